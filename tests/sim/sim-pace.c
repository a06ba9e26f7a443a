/* sim-pace: a wire that carries bytes at a fixed rate, one after the other */
#include "sim-pace.h"

#define USEC_PER_SEC 1000000ULL

void sim_pace_init(struct sim_pace *p, uint64_t bits_per_sec, unsigned bits_per_byte)
{
	*p = (struct sim_pace){
	    .bits_per_sec = bits_per_sec,
	    .bits_per_byte = bits_per_byte ? bits_per_byte : 8,
	};
}

bool sim_pace_limited(const struct sim_pace *p)
{
	return p->bits_per_sec > 0;
}

uint64_t sim_pace_duration_us(const struct sim_pace *p, uint64_t n)
{
	unsigned __int128 bits_us = (unsigned __int128)n * p->bits_per_byte * USEC_PER_SEC;

	if (!sim_pace_limited(p))
		return 0;
	return (uint64_t)((bits_us + p->bits_per_sec - 1) / p->bits_per_sec);
}

uint64_t sim_pace_free_us(const struct sim_pace *p)
{
	return p->start_us + sim_pace_duration_us(p, p->bytes);
}

void sim_pace_set_rate(struct sim_pace *p, uint64_t now_us, uint64_t bits_per_sec)
{
	uint64_t free_us;

	if (bits_per_sec == p->bits_per_sec)
		return;
	/* A new busy period from the moment the old bytes are through. */
	free_us = sim_pace_free_us(p);
	p->start_us = free_us > now_us ? free_us : now_us;
	p->bytes = 0;
	p->bits_per_sec = bits_per_sec;
}

uint64_t sim_pace_charge(struct sim_pace *p, uint64_t now_us, uint64_t n)
{
	p->total += n;
	if (!sim_pace_limited(p))
		return now_us;
	if (sim_pace_free_us(p) <= now_us) {
		p->start_us = now_us;
		p->bytes = 0;
	}
	p->bytes += n;
	return sim_pace_free_us(p);
}

uint64_t sim_pace_passed(const struct sim_pace *p, uint64_t now_us)
{
	uint64_t earlier = p->total - p->bytes;
	unsigned __int128 n;

	if (!sim_pace_limited(p))
		return p->total;
	if (now_us <= p->start_us)
		return earlier;
	/* Byte i (from 1) passes at start + ceil(i * bits * 1e6 / rate), which is
	 * <= now exactly when i * bits * 1e6 <= (now - start) * rate. */
	n = (unsigned __int128)(now_us - p->start_us) * p->bits_per_sec /
	    ((unsigned __int128)p->bits_per_byte * USEC_PER_SEC);
	return earlier + (n < p->bytes ? (uint64_t)n : p->bytes);
}

uint64_t sim_pace_when(const struct sim_pace *p, uint64_t k)
{
	uint64_t earlier = p->total - p->bytes;

	if (!sim_pace_limited(p))
		return 0;
	if (k <= earlier)
		return p->start_us;
	return p->start_us + sim_pace_duration_us(p, k - earlier);
}
