/* group-test: helpers shared by the group codec tests (recordings, vectors, malformed input) */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smp-buf.h"
#include "smp-cbor.h"
#include "smp-groups.h"
#include "tests/tap.h"
#include "tests/unit/group-test.h"

/* ---- vectors ---- */

struct smp_response *gt_response(const char *hex, const char *what)
{
	struct smp_response *rsp = NULL;
	size_t n;
	uint8_t *pkt = tap_unhex(hex, &n);
	int r = smp_response_decode(pkt, n, &rsp);

	free(pkt);
	if (r < 0) {
		ok(false, "%s: decodes (%s)", what, strerror(-r));
		return NULL;
	}
	return rsp;
}

void gt_check_request(int err, struct smp_request *r, uint8_t version, uint8_t seq,
		      const char *hex, const char *what)
{
	size_t n;
	uint8_t *want = tap_unhex(hex, &n);

	if (err < 0 || !r) {
		ok(false, "%s: builder failed: %s", what, strerror(-err));
	} else if (smp_request_finish(r, version, seq) < 0) {
		ok(false, "%s: finish failed", what);
	} else {
		is_mem(r->pkt.data, r->pkt.len, want, n, "%s: bytes", what);
	}
	smp_request_free(r);
	free(want);
}

void gt_check_status(const struct smp_response *rsp, enum smp_status_kind kind, uint16_t group,
		     int64_t rc, const char *what)
{
	bool same = rsp->status.kind == kind && rsp->status.rc == rc &&
		    (kind != SMP_STATUS_GROUP_ERR || rsp->status.group == group);

	if (!ok(same, "%s: status", what))
		tap_diag("got kind %d group %u rc %lld", (int)rsp->status.kind, rsp->status.group,
			 (long long)rsp->status.rc);
}

/* ---- recordings ---- */

static uint8_t *unhex_json(json_t *v, size_t *ret_len)
{
	const char *s = json_string_value(v);

	if (!s) {
		fprintf(stderr, "recording: hex string expected\n");
		abort();
	}
	return tap_unhex(s, ret_len);
}

struct gt_recording *gt_recording_load(const char *file)
{
	char rel[256];
	json_error_t jerr;
	json_t *root, *pairs;
	struct gt_recording *rec;

	snprintf(rel, sizeof(rel), "tests/data/zephyr-4.1/%s", file);
	root = json_load_file(tap_srcpath(rel), 0, &jerr);
	if (!root) {
		fprintf(stderr, "%s: %s\n", tap_srcpath(rel), jerr.text);
		abort();
	}
	pairs = json_object_get(root, "pairs");
	rec = calloc(1, sizeof(*rec));
	if (!rec || !json_is_array(pairs))
		abort();
	rec->file = strdup(file);
	rec->version = (int)json_integer_value(json_object_get(root, "smp_version_sent"));
	rec->n_pairs = json_array_size(pairs);
	rec->pairs = calloc(rec->n_pairs, sizeof(*rec->pairs));
	if (!rec->file || !rec->pairs)
		abort();
	for (size_t i = 0; i < rec->n_pairs; i++) {
		json_t *p = json_array_get(pairs, i);
		struct gt_pair *gp = &rec->pairs[i];

		gp->name = strdup(json_string_value(json_object_get(p, "name")));
		if (!gp->name)
			abort();
		gp->req = unhex_json(json_object_get(p, "request_hex"), &gp->req_len);
		gp->rsp = unhex_json(json_object_get(p, "response_hex"), &gp->rsp_len);
	}
	json_decref(root);
	return rec;
}

void gt_recording_free(struct gt_recording *rec)
{
	if (!rec)
		return;
	for (size_t i = 0; i < rec->n_pairs; i++) {
		free(rec->pairs[i].name);
		free(rec->pairs[i].req);
		free(rec->pairs[i].rsp);
	}
	free(rec->pairs);
	free(rec->file);
	free(rec);
}

const struct gt_pair *gt_recording_pair(const struct gt_recording *rec, const char *name)
{
	for (size_t i = 0; i < rec->n_pairs; i++)
		if (strcmp(rec->pairs[i].name, name) == 0)
			return &rec->pairs[i];
	fprintf(stderr, "%s: no pair named \"%s\"\n", rec->file, name);
	abort();
}

struct smp_response *gt_recording_response(const struct gt_recording *rec, const char *name)
{
	const struct gt_pair *p = gt_recording_pair(rec, name);
	struct smp_response *rsp = NULL;
	int r = smp_response_decode(p->rsp, p->rsp_len, &rsp);

	if (r < 0) {
		ok(false, "%s %s: response decodes (%s)", rec->file, name, strerror(-r));
		return NULL;
	}
	return rsp;
}

void gt_check_recorded_request(const struct gt_recording *rec, const char *name, int err,
			       struct smp_request *r)
{
	const struct gt_pair *p = gt_recording_pair(rec, name);
	struct smp_header h;

	if (err < 0 || !r || smp_header_decode(p->req, p->req_len, &h) < 0) {
		ok(false, "%s %s: request builds (%s)", rec->file, name, strerror(-err));
		smp_request_free(r);
		return;
	}
	if (smp_request_finish(r, h.version, h.seq) < 0)
		ok(false, "%s %s: request finishes", rec->file, name);
	else
		is_mem(r->pkt.data, r->pkt.len, p->req, p->req_len, "%s %s: request bytes",
		       rec->file, name);
	smp_request_free(r);
}

/* ---- malformed input ---- */

static void put_hex(struct smp_buf *b, const char *hex)
{
	size_t n;
	uint8_t *p = tap_unhex(hex, &n);

	smp_buf_append(b, p, n);
	free(p);
}

static void put_header(struct smp_buf *b, uint16_t group, uint8_t id, uint8_t op)
{
	struct smp_header h = {
		.version = SMP_VERSION_2,
		.op = op,
		.len = (uint16_t)(b->len - SMP_HEADER_SIZE),
		.group = group,
		.id = id,
	};

	smp_header_encode(&h, b->data);
}

/* Decodes and parses a whole packet. */
static int decode_and_parse(const uint8_t *pkt, size_t len)
{
	struct smp_response *rsp = NULL;
	int r = smp_response_decode(pkt, len, &rsp);

	if (r < 0)
		return GT_UNDECODABLE;
	r = smp_groups_parse_any(rsp);
	smp_response_free(rsp);
	return r;
}

static int buf_parse(struct smp_buf *b, uint16_t group, uint8_t id, uint8_t op)
{
	int r;

	if (smp_buf_error(b))
		abort();
	put_header(b, group, id, op);
	r = decode_and_parse(b->data, b->len);
	smp_buf_clear(b);
	return r;
}

static void buf_start(struct smp_buf *b)
{
	*b = (struct smp_buf)SMP_BUF_INIT;
	if (!smp_buf_reserve(b, SMP_HEADER_SIZE))
		abort();
	b->len = SMP_HEADER_SIZE;
}

#define NONE SIZE_MAX

/* skip: index of a field to leave out; replace: index whose value is replaced by value. */
static int fields_parse(uint16_t group, uint8_t id, uint8_t op, const char *prefix,
			const struct gt_field *f, size_t n, const char *suffix, bool definite,
			size_t skip, size_t replace, const char *value)
{
	struct smp_buf b;

	buf_start(&b);
	put_hex(&b, prefix);
	if (definite)
		smp_cbor_put_map(&b, n - (skip != NONE));
	else
		smp_cbor_put_map_indef(&b);
	for (size_t i = 0; i < n; i++) {
		if (i == skip)
			continue;
		smp_cbor_put_text(&b, f[i].key);
		put_hex(&b, i == replace ? value : f[i].good);
	}
	if (!definite)
		smp_cbor_put_break(&b);
	put_hex(&b, suffix);
	return buf_parse(&b, group, id, op);
}

void gt_check_fields(const char *what, uint16_t group, uint8_t id, uint8_t op, const char *prefix,
		     const struct gt_field *f, size_t n, const char *suffix)
{
	is_int(fields_parse(group, id, op, prefix, f, n, suffix, false, NONE, NONE, NULL), 0,
	       "%s: all fields, indefinite map", what);
	is_int(fields_parse(group, id, op, prefix, f, n, suffix, true, NONE, NONE, NULL), 0,
	       "%s: all fields, definite map", what);
	for (size_t i = 0; i < n; i++) {
		is_int(fields_parse(group, id, op, prefix, f, n, suffix, false, i, NONE, NULL),
		       f[i].required ? -EBADMSG : 0, "%s: without %s (%s)", what, f[i].key,
		       f[i].required ? "required" : "optional");
		is_int(fields_parse(group, id, op, prefix, f, n, suffix, false, NONE, i, "f6"),
		       -EBADMSG, "%s: %s is null", what, f[i].key);
		if (f[i].wrong)
			is_int(fields_parse(group, id, op, prefix, f, n, suffix, false, NONE, i,
					    f[i].wrong),
			       -EBADMSG, "%s: %s has the wrong type (%s)", what, f[i].key,
			       f[i].wrong);
	}
}

void gt_check_payload(const char *what, uint16_t group, uint8_t id, uint8_t op,
		      const char *payload, int want)
{
	struct smp_buf b;

	buf_start(&b);
	put_hex(&b, payload);
	is_int(buf_parse(&b, group, id, op), want, "%s", what);
}

void gt_check_truncations(const char *what, const uint8_t *pkt, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);
	struct smp_header h;
	bool user = smp_header_decode(pkt, len, &h) == 0 && h.group >= SMP_GROUP_USER_MIN;
	size_t bad = 0;

	if (!copy)
		abort();
	memcpy(copy, pkt, len);
	for (size_t k = 0; k < len; k++) {
		struct smp_response *rsp = NULL;

		if (smp_response_decode(pkt, k, &rsp) >= 0) {
			smp_response_free(rsp);
			bad++;
		}
		if (k < SMP_HEADER_SIZE)
			continue;
		/* The same prefix with a length field that agrees: the CBOR itself is cut. */
		copy[2] = (uint8_t)((k - SMP_HEADER_SIZE) >> 8);
		copy[3] = (uint8_t)(k - SMP_HEADER_SIZE);
		/* A user group may answer with no payload at all. */
		if (decode_and_parse(copy, k) != GT_UNDECODABLE && !(user && k == SMP_HEADER_SIZE))
			bad++;
	}
	is_int(bad, 0, "%s: all %zu truncations refused", what, len);
	free(copy);
}

void gt_check_mutations(const char *what, const uint8_t *pkt, size_t len)
{
	static const uint8_t values[] = { 0x00, 0x01, 0x17, 0x18, 0x1b, 0x20, 0x3b, 0x40, 0x5b,
					  0x5f, 0x60, 0x7b, 0x7f, 0x80, 0x9b, 0x9f, 0xa0, 0xbb,
					  0xbf, 0xc0, 0xf4, 0xf5, 0xf6, 0xf9, 0xfb, 0xff };
	uint8_t *copy = malloc(len ? len : 1);
	size_t bad = 0, parsed = 0;

	if (!copy)
		abort();
	for (size_t i = 0; i < len; i++) {
		for (size_t v = 0; v < sizeof(values); v++) {
			int r;

			memcpy(copy, pkt, len);
			if (copy[i] == values[v])
				continue;
			copy[i] = values[v];
			r = decode_and_parse(copy, len);
			if (r == GT_UNDECODABLE || r == 0 || r == -EBADMSG || r == -EREMOTEIO ||
			    r == -ENOTSUP)
				parsed += r != GT_UNDECODABLE && r != -EBADMSG;
			else
				bad++;
		}
	}
	is_int(bad, 0, "%s: %zu mutations give known codes (%zu not malformed)", what,
	       len * sizeof(values), parsed);
	free(copy);
}

void gt_check_recordings_robust(uint16_t group)
{
	static const char *const files[] = { "udp-v2.json", "udp-v1.json" };

	for (size_t f = 0; f < 2; f++) {
		struct gt_recording *rec = gt_recording_load(files[f]);

		for (size_t i = 0; i < rec->n_pairs; i++) {
			const struct gt_pair *p = &rec->pairs[i];
			struct smp_header h;
			char what[256];

			if (smp_header_decode(p->req, p->req_len, &h) < 0 || h.group != group)
				continue;
			snprintf(what, sizeof(what), "%s %s", rec->file, p->name);
			gt_check_truncations(what, p->rsp, p->rsp_len);
			gt_check_mutations(what, p->rsp, p->rsp_len);
		}
		gt_recording_free(rec);
	}
}

static void hostile(const char *what, uint16_t group, uint8_t id, uint8_t op, const char *base,
		    const char *key, const char *value, int want, const char *label)
{
	struct smp_buf b;

	buf_start(&b);
	smp_cbor_put_map_indef(&b);
	put_hex(&b, base);
	smp_cbor_put_text(&b, key);
	put_hex(&b, value);
	smp_cbor_put_break(&b);
	is_int(buf_parse(&b, group, id, op), want, "%s: %s %s", what, key, label);
}

static char *nested(const char *open, unsigned depth, const char *leaf, const char *close)
{
	size_t n = (strlen(open) + strlen(close)) * depth + strlen(leaf) + 1;
	char *s = malloc(n);

	if (!s)
		abort();
	s[0] = 0;
	for (unsigned i = 0; i < depth; i++)
		strcat(s, open);
	strcat(s, leaf);
	for (unsigned i = 0; i < depth; i++)
		strcat(s, close);
	return s;
}

void gt_check_hostile(const char *what, uint16_t group, uint8_t id, uint8_t op, const char *base,
		      const char *key)
{
	static const struct {
		const char *value;
		const char *label;
	} huge[] = {
		{ "9bffffffffffffffff", "declares 2^64-1 array items" },
		{ "9a7fffffff00", "declares 2^31 array items" },
		{ "bb7fffffffffffffff", "declares 2^63 map pairs" },
		{ "5b0000000100000000", "declares a 4 GiB byte string" },
		{ "7affffffff61", "declares a 4 GiB text string" },
		{ "5f5affffffff00ff", "has a huge chunk in an indefinite byte string" },
		{ "1c", "uses a reserved additional-information value" },
	};
	char *deep;

	for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++)
		hostile(what, group, id, op, base, key, huge[i].value, GT_UNDECODABLE,
			huge[i].label);

	/* Past the decoder's depth limit. */
	deep = nested("81", SMP_CBOR_MAX_DEPTH + 8, "00", "");
	hostile(what, group, id, op, base, key, deep, GT_UNDECODABLE, "nests 40 definite arrays");
	free(deep);
	deep = nested("bf616b", SMP_CBOR_MAX_DEPTH + 8, "00", "ff");
	hostile(what, group, id, op, base, key, deep, GT_UNDECODABLE, "nests 40 indefinite maps");
	free(deep);

	/* Within the limit: the decoder accepts it, the typed parser must refuse it. */
	deep = nested("9f", 20, "00", "ff");
	hostile(what, group, id, op, base, key, deep, -EBADMSG, "nests 20 arrays");
	free(deep);
	deep = nested("a1616b", 20, "00", "");
	hostile(what, group, id, op, base, key, deep, -EBADMSG, "nests 20 maps");
	free(deep);
}
