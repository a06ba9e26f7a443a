/* api: registering every route of the REST API */
#include "api/api.h"

int api_register(struct api_http *h, struct gw_manager *m)
{
	/* One line per resource file (api/api-<resource>.c), in the order of
	 * the OpenAPI document. */
	int (*const reg[])(struct api_http *, struct gw_manager *) = {
		api_system_register,
		api_devices_register,
		api_os_register,
		api_image_register,
		api_stat_register,
		api_enum_register,
		api_zephyr_register,
		api_raw_register,
		api_settings_register,
		api_fs_register,
		api_shell_register,
		api_firmware_register,
		api_tokens_register,
		api_events_register,
		api_metrics_register,
		api_rollouts_register,
	};
	int r;

	for (size_t i = 0; i < sizeof(reg) / sizeof(reg[0]); i++) {
		r = reg[i](h, m);
		if (r < 0)
			return r;
	}
	return 0;
}
