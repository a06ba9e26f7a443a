/* gw-manager: the object that owns smpgwd's event loop and every module on it */
#include <time.h>

#include "daemon/gw-manager.h"

uint64_t gw_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
