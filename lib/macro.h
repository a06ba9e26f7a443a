/* macro: small helpers shared by every module (cleanup attributes, array sizes) */
#pragma once

#include <stdlib.h>

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _warn_unused_ __attribute__((warn_unused_result))

static inline void freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

/* Hands a pointer out of a _cleanup_ variable: returns it and clears the variable. */
#define TAKE_PTR(p)                                \
	({                                         \
		__typeof__(p) _take_tmp = (p);     \
		(p) = NULL;                        \
		_take_tmp;                         \
	})

/* Declares name##p(type **) that calls func on a non-NULL pointer. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)        \
	static inline void func##p(type *p)            \
	{                                              \
		if (*p)                                \
			func(*p);                      \
	}

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
