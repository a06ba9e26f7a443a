/* smp-chunk: how many data bytes fit in one upload request on a given link */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* smp-protocol.md §13.4: a device that does not answer MCUmgr params is
 * assumed to have Zephyr's default buf_size. */
#define SMP_CHUNK_DEFAULT_BUF_SIZE 384
/* ATT MTU when none was negotiated. */
#define SMP_CHUNK_DEFAULT_ATT_MTU 23
/* UDP payload that no IPv6 (1280) or IPv4 link fragments: used when the
 * caller knows no datagram limit. */
#define SMP_CHUNK_UDP_SAFE_DATAGRAM 1232

/* Size of the CBOR head of a byte string of n bytes: 1, 2, 3, 5 or 9. */
size_t smp_chunk_bstr_head(size_t n);

/* The largest n such that the request, with its "data" byte string holding n
 * bytes, is at most budget bytes: packet_size_with_empty_data - 1 +
 * smp_chunk_bstr_head(n) + n <= budget (§13.5). packet_size_with_empty_data
 * is the whole SMP packet (8-byte header + CBOR map) encoded with "data": h''.
 * Exact at the head-size boundaries (23/24, 255/256, 65535/65536 bytes):
 * devices drop a request one byte too big without an answer. Returns 0 when no
 * data byte fits (or packet_size_with_empty_data is 0). */
size_t smp_chunk_max_data(size_t budget, size_t packet_size_with_empty_data);

/* Largest SMP packet (header included) per transport, §13.4. buf_size is
 * what MCUmgr params reported; 0 = unknown = SMP_CHUNK_DEFAULT_BUF_SIZE. */

/* Serial console framing: LEN16 and CRC16 share the device buffer, so
 * buf_size - 4 (0 when buf_size < 4). Also right for MCUboot serial recovery
 * with its BOOT_SERIAL_MAX_RECEIVE_SIZE as buf_size. */
size_t smp_chunk_budget_serial(size_t buf_size);
/* BLE: buf_size when the device reassembles writes (att_mtu unused), else
 * min(buf_size, att_mtu - 3) with att_mtu 0 = SMP_CHUNK_DEFAULT_ATT_MTU, and 0
 * when att_mtu is below 4. */
size_t smp_chunk_budget_ble(size_t buf_size, size_t att_mtu, bool reassembly);
/* UDP: min(buf_size, datagram_max), where datagram_max is the device's
 * CONFIG_MCUMGR_TRANSPORT_UDP_MTU or the path MTU minus IP/UDP headers,
 * whichever the caller knows to be smaller; 0 = SMP_CHUNK_UDP_SAFE_DATAGRAM. */
size_t smp_chunk_budget_udp(size_t buf_size, size_t datagram_max);
