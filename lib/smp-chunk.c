/* smp-chunk: how many data bytes fit in one upload request on a given link */
#include <stdint.h>

#include "macro.h"
#include "smp-chunk.h"

size_t smp_chunk_bstr_head(size_t n)
{
	if (n < 24)
		return 1;
	if (n <= UINT8_MAX)
		return 2;
	if (n <= UINT16_MAX)
		return 3;
	if ((uint64_t)n <= UINT32_MAX)
		return 5;
	return 9;
}

size_t smp_chunk_max_data(size_t budget, size_t packet_size_with_empty_data)
{
	size_t fixed, room, n;

	if (packet_size_with_empty_data == 0 || packet_size_with_empty_data >= budget)
		return 0;

	/* Everything but the byte-string head; room is what head + data may use. */
	fixed = packet_size_with_empty_data - 1;
	room = budget - fixed;
	n = room - 1;
	/* The head shrinks as n does, by at most 8 bytes: a few steps at most. */
	while (n > 0 && n + smp_chunk_bstr_head(n) > room)
		n--;
	return n;
}

size_t smp_chunk_budget_serial(size_t buf_size)
{
	if (buf_size == 0)
		buf_size = SMP_CHUNK_DEFAULT_BUF_SIZE;
	return buf_size < 4 ? 0 : buf_size - 4;
}

size_t smp_chunk_budget_ble(size_t buf_size, size_t att_mtu, bool reassembly)
{
	if (buf_size == 0)
		buf_size = SMP_CHUNK_DEFAULT_BUF_SIZE;
	if (reassembly)
		return buf_size;
	if (att_mtu == 0)
		att_mtu = SMP_CHUNK_DEFAULT_ATT_MTU;
	if (att_mtu < 4)
		return 0;
	return MIN(buf_size, att_mtu - 3);
}

size_t smp_chunk_budget_udp(size_t buf_size, size_t datagram_max)
{
	if (buf_size == 0)
		buf_size = SMP_CHUNK_DEFAULT_BUF_SIZE;
	if (datagram_max == 0)
		datagram_max = SMP_CHUNK_UDP_SAFE_DATAGRAM;
	return MIN(buf_size, datagram_max);
}
