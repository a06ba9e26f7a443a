/* gw-autoupdate: standing update rules that start a rollout for every matching device running an older image */
#pragma once

#include <jansson.h>
#include <stdint.h>

struct gw_manager;
struct gw_autoupdate;

/*
 * A rule (POST /api/v1/auto-updates; every key optional):
 *   "name": text for people, at most 128 bytes (default "")
 *   "enabled": true (default) or false
 *   "selector": which devices, every key given must match:
 *       "labels": ["a", ...]  the device carries every one of them
 *       "transport": "udp" | "serial" | "ble"
 *       "name": glob on the device's name
 *       "hardware": glob on the hardware platform the device reports in
 *                   its OS info (field i, Zephyr's board: "nrf52840dk/nrf52840")
 *       "node": glob on the node name of its OS info (field n; Zephyr's
 *               hostname, which applications often set to their own name)
 *     The OS info fields come from the registry's "info" section (the
 *     poller's OS info "a"): a device that has not reported it yet matches
 *     no rule naming hardware or node, and is asked for it.
 *   "firmware": the id of a stored image, or null (default): the newest
 *       stored image (by version; the newest upload among equal versions)
 *       whose name matches "image_name"
 *   "image_name": glob on the firmware's name (the ?name= of its upload);
 *       only with "firmware": null; null or absent: any stored image
 *   "strategy": a rollout strategy (gw-rollouts.h) without "window"
 *   "window": "HH:MM-HH:MM" (local time) or null: when the rule's rollouts
 *       may start jobs
 *   "allow_downgrade": false (default): only a device whose running image
 *       (image 0, active slot) has a lower version than the firmware is
 *       updated, and the rule's rollouts set the strategy's "upgrade" so
 *       that the device itself refuses an image that is not newer than its
 *       own; true: any device whose running image is not the firmware's (by
 *       image hash) is.
 *
 * Evaluation. Whenever a device is added, comes online, changes its labels
 * or name, or reports a new "image_state" or "info" section, and whenever
 * a rule is created or changed or an image is added to the store, the
 * rules are evaluated for the devices concerned, in a batch at most once a
 * second (timer "gw-autoupdate-eval"). Each enabled rule, in id order,
 * gives the online devices it selects that need its firmware and have no
 * job that is not final one rollout (gw_rollouts_create_auto(), named
 * "auto-update <id>: <name>", devices by id), so a device two rules select
 * gets the first rule's. A device whose image state or OS info is unknown
 * is asked for it (gw_poller_poll_now()); so is one whose image state is
 * older than the last transition of any of its jobs (it is judged on the
 * answer), and every device whose job ends while a rule is enabled.
 *
 * No loop: a rule never gives a device the same firmware again once a job
 * of its rollouts for that device and firmware ended failed, rolled_back
 * or canceled (until the rule names another firmware, or a newer image
 * becomes its target); after one that succeeded only when the device
 * reported a different running image since that job ended (and never for
 * an "upload-only" strategy, which leaves the old image running).
 *
 * Views: {"id", "name", "enabled", "selector", "firmware" (id or null),
 * "image_name" (or null), "strategy", "window" (or null),
 * "allow_downgrade", "created_at", "updated_at" (ms), "target": {"id",
 * "version", "image_hash", "name"} of the image the rule installs now, or
 * null when there is none}.
 */

/* Loads the rules (m->db required) and follows m->registry and m->events
 * (when set); evaluates every device once the loop runs. Returns 0 or -errno. */
int gw_autoupdate_new(struct gw_manager *m, struct gw_autoupdate **ret);
struct gw_autoupdate *gw_autoupdate_free(struct gw_autoupdate *au);

/* Every rule, by id: a JSON array of views (*ret, new reference). */
int gw_autoupdate_list(struct gw_autoupdate *au, json_t **ret);
/* One rule's view. Returns 0, -ENOENT. */
int gw_autoupdate_get(struct gw_autoupdate *au, int64_t id, json_t **ret);

/* Creates a rule from req (the object above). Returns 0 and its id;
 * -EINVAL with a sentence in err for a bad rule, -ENXIO (err says) when
 * "firmware" names no stored image, -ENOMEM, -EIO. */
int gw_autoupdate_create(struct gw_autoupdate *au, const json_t *req, int64_t *ret_id,
			 char *err, size_t errlen);
/* Changes the keys given in patch (the others keep their values). Returns
 * 0, -ENOENT for no such rule, -EINVAL / -ENXIO as gw_autoupdate_create(). */
int gw_autoupdate_update(struct gw_autoupdate *au, int64_t id, const json_t *patch, char *err,
			 size_t errlen);
/* Deletes a rule; its rollouts go on (their "auto_update" becomes null).
 * Returns 0, -ENOENT. */
int gw_autoupdate_remove(struct gw_autoupdate *au, int64_t id);

/* Evaluates every rule against every device at the next loop iteration. */
void gw_autoupdate_evaluate(struct gw_autoupdate *au);
