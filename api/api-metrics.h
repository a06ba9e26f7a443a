/* api-metrics: the Prometheus exposition of smpgwd's counters and device gauges */
#pragma once

#include "lib/smp-buf.h"

struct gw_manager;

/* Appends the whole exposition (text format 0.0.4) to b, from memory only:
 * counters, the registry and its cached reported sections; never a device
 * call. Returns 0, or the buffer's error (-ENOMEM). */
int api_metrics_render(struct gw_manager *m, struct smp_buf *b);
