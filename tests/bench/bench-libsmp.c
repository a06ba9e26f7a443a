/* bench-libsmp: cost of libsmp's hot paths: upload chunk codec, serial framing, client CPU/MB */
#include <errno.h>
#include <getopt.h>
#include <nettle/sha2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "smp-client.h"
#include "smp-image.h"
#include "smp-serial-link.h"
#include "smp-serial.h"
#include "smp-upload.h"
#include "tests/unit/client-test.h"

#define CHUNK 2048

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what, int r)
{
	fprintf(stderr, "bench-libsmp: %s: %s\n", what, strerror(r < 0 ? -r : r));
	exit(EXIT_FAILURE);
}

/* (1) One upload chunk through the codec: build the request with 2 KiB of
 * data, write its header, decode a Zephyr-style answer and parse it. */
static void bench_chunk_codec(unsigned n)
{
	static uint8_t data[CHUNK], sha[32];
	uint8_t rsp_pkt[32];
	double t0 = now_s(), t;
	volatile uint64_t sink = 0;

	memset(data, 0xa5, sizeof(data));
	for (unsigned i = 0; i < n; i++) {
		const struct smp_image_upload_args a = {
			.off = (uint64_t)(i % 500) * CHUNK + 4096,
			.data = data,
			.data_len = sizeof(data),
			.len = 1024 * 1024 + 8192,
			.sha = sha,
			.sha_len = sizeof(sha),
		};
		struct smp_image_upload_result u;
		struct smp_response *rsp;
		struct smp_request *req;
		uint64_t next = a.off + CHUNK;
		size_t k = 0;
		int r;

		if (i == 1000)
			t0 = now_s(); /* warm-up done */
		r = smp_image_upload_request(&a, &req);
		if (r >= 0)
			r = smp_request_finish(req, SMP_VERSION_2, (uint8_t)i);
		if (r < 0)
			die("upload request", r);
		sink += req->pkt.len;
		smp_request_free(req);

		/* {"off": next} as Zephyr sends it: indefinite map, header copied. */
		rsp_pkt[k++] = 0x0b;
		rsp_pkt[k++] = 0;
		k += 2;
		rsp_pkt[k++] = 0;
		rsp_pkt[k++] = SMP_GROUP_IMAGE;
		rsp_pkt[k++] = (uint8_t)i;
		rsp_pkt[k++] = SMP_IMAGE_UPLOAD;
		rsp_pkt[k++] = 0xbf;
		rsp_pkt[k++] = 0x63;
		memcpy(rsp_pkt + k, "off", 3);
		k += 3;
		rsp_pkt[k++] = 0x1a;
		for (int s = 24; s >= 0; s -= 8)
			rsp_pkt[k++] = (uint8_t)(next >> s);
		rsp_pkt[k++] = 0xff;
		rsp_pkt[2] = 0;
		rsp_pkt[3] = (uint8_t)(k - SMP_HEADER_SIZE);
		r = smp_response_decode(rsp_pkt, k, &rsp);
		if (r >= 0)
			r = smp_image_upload_parse(rsp, &u);
		if (r < 0 || u.off != next)
			die("upload response", r < 0 ? r : -EBADMSG);
		sink += u.off;
		smp_response_free(rsp);
	}
	t = now_s() - t0;
	printf("  upload chunk codec (2 KiB data)        %7.0f ns/chunk   %9.0f chunks/s (%u chunks)\n",
	       t * 1e9 / (n - 1000), (n - 1000) / t, n - 1000);
	(void)sink;
}

static void on_packet(const uint8_t *pkt, size_t len, void *userdata)
{
	*(size_t *)userdata += len;
}

/* (2) Console framing of 2 KiB packets: encode, then decode the stream. */
static void bench_serial(unsigned n)
{
	struct smp_buf one = SMP_BUF_INIT, stream = SMP_BUF_INIT;
	struct smp_serial_decoder *dec;
	uint8_t pkt[8 + CHUNK + 16];
	size_t got = 0;
	double t0, t;
	int r;

	memset(pkt, 0x3c, sizeof(pkt));
	t0 = now_s();
	for (unsigned i = 0; i < n; i++) {
		one.len = 0;
		pkt[6] = (uint8_t)i;
		r = smp_serial_encode(pkt, sizeof(pkt), 0, &one);
		if (r < 0)
			die("serial encode", r);
	}
	t = now_s() - t0;
	printf("  serial framing encode                  %7.1f MB/s of packets  %5.1f MB/s on the wire\n",
	       (double)n * sizeof(pkt) / t / 1e6, (double)n * one.len / t / 1e6);

	for (unsigned i = 0; i < 256; i++) {
		pkt[6] = (uint8_t)i;
		r = smp_serial_encode(pkt, sizeof(pkt), 0, &stream);
		if (r < 0)
			die("serial encode", r);
	}
	r = smp_serial_decoder_new(sizeof(pkt), &dec);
	if (r < 0)
		die("serial decoder", r);
	t0 = now_s();
	for (unsigned i = 0; i < n / 256; i++)
		smp_serial_decoder_feed(dec, stream.data, stream.len, on_packet, NULL, &got);
	t = now_s() - t0;
	if (got != (size_t)(n / 256) * 256 * sizeof(pkt))
		die("serial decode lost packets", -EBADMSG);
	printf("  serial framing decode                  %7.1f MB/s of packets  %5.1f MB/s on the wire\n",
	       (double)got / t / 1e6, (double)(n / 256) * stream.len / t / 1e6);
	smp_serial_decoder_free(dec);
	smp_buf_clear(&one);
	smp_buf_clear(&stream);
}

struct framed_ctx {
	struct test_model *m;
	struct smp_buf *rsp, *out;
};

static void on_device_packet(const uint8_t *pkt, size_t len, void *userdata)
{
	struct framed_ctx *ctx = userdata;

	ctx->rsp->len = 0;
	if (test_model_handle(ctx->m, pkt, len, ctx->rsp))
		(void)smp_serial_encode(ctx->rsp->data, ctx->rsp->len, 0, ctx->out);
}

/* The device of (3), in its own process so its CPU is not counted: it reads
 * requests, answers them with the test device model, framed or not. */
static void device_process(int fd, bool framed, size_t size)
{
	struct test_model m = { .buf_size = 2048, .buf_count = 8 };
	struct smp_serial_decoder *dec = NULL;
	static uint8_t buf[65536];
	struct smp_buf rsp = SMP_BUF_INIT, out = SMP_BUF_INIT;
	struct framed_ctx ctx = { &m, &rsp, &out };

	m.slot_cap = size;
	m.slot = malloc(size);
	if (!m.slot || (framed && smp_serial_decoder_new(SMP_SERIAL_PACKET_MAX, &dec) < 0))
		_exit(1);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n <= 0)
			_exit(0);
		if (!framed) {
			rsp.len = 0;
			if (test_model_handle(&m, buf, (size_t)n, &rsp) &&
			    write(fd, rsp.data, rsp.len) != (ssize_t)rsp.len)
				_exit(1);
			continue;
		}
		out.len = 0;
		smp_serial_decoder_feed(dec, buf, (size_t)n, on_device_packet, NULL, &ctx);
		for (size_t off = 0; off < out.len;) {
			ssize_t w = write(fd, out.data + off, out.len - off);

			if (w <= 0)
				_exit(1);
			off += (size_t)w;
		}
	}
}

/* A SEQPACKET transport without framing, to tell the client's own cost. */
struct packet_link {
	struct smp_transport t;
	int fd;
	sd_event_source *io;
};

static int packet_link_send(struct smp_transport *t, const uint8_t *pkt, size_t len)
{
	struct packet_link *l = (struct packet_link *)t;

	return send(l->fd, pkt, len, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

static size_t packet_link_budget(struct smp_transport *t, size_t buf_size)
{
	return buf_size ? buf_size : 384;
}

static void packet_link_free(struct smp_transport *t)
{
	struct packet_link *l = (struct packet_link *)t;

	sd_event_source_disable_unref(l->io);
	close(l->fd);
	free(l);
}

static const struct smp_transport_ops packet_link_ops = {
	.name = "bench-seqpacket",
	.send = packet_link_send,
	.packet_budget = packet_link_budget,
	.free = packet_link_free,
};

static int packet_link_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct packet_link *l = userdata;
	static uint8_t buf[65536];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n > 0)
		l->t.on_packet(&l->t, buf, (size_t)n, l->t.userdata);
	return 0;
}

struct run {
	bool done;
	int error;
	struct smp_upload_result res;
};

static void on_done(int error, const struct smp_upload_result *res, void *userdata)
{
	struct run *r = userdata;

	r->done = true;
	r->error = error;
	r->res = *res;
}

/* (3) Client CPU per MB uploaded; the device reports buf_size 2048, buf_count 8. */
static void bench_upload(bool framed, size_t size, unsigned max_window)
{
	struct smp_client_config cfg;
	struct smp_upload_options opts;
	struct smp_upload_source src = { .fd = -1, .size = size, .has_sha = true };
	struct smp_transport *t;
	struct smp_client *c;
	struct run run = { 0 };
	struct sha256_ctx sha;
	uint8_t *img = malloc(size);
	sd_event *e;
	double t0, c0, wall, cpu;
	pid_t pid;
	int sv[2], r, status;

	for (size_t i = 0; i < size; i++)
		img[i] = (uint8_t)(i * 31 + (i >> 11));
	memcpy(img, "\x3d\xb8\xf3\x96", 4);
	sha256_init(&sha);
	sha256_update(&sha, size, img);
	sha256_digest(&sha, 32, src.sha);
	src.data = img;

	if (socketpair(AF_UNIX, (framed ? SOCK_STREAM : SOCK_SEQPACKET) | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair", -errno);
	pid = fork();
	if (pid < 0)
		die("fork", -errno);
	if (pid == 0) {
		close(sv[0]);
		device_process(sv[1], framed, size);
	}
	close(sv[1]);

	r = sd_event_new(&e);
	if (r < 0)
		die("sd_event_new", r);
	if (framed) {
		r = smp_serial_link_new_fd(e, sv[0], NULL, &t);
		if (r < 0)
			die("serial link", r);
	} else {
		struct packet_link *l = calloc(1, sizeof(*l));

		l->t.ops = &packet_link_ops;
		l->t.link = SMP_LINK_BLE;
		l->fd = sv[0];
		r = sd_event_add_io(e, &l->io, l->fd, EPOLLIN, packet_link_on_io, l);
		if (r < 0)
			die("io source", r);
		t = &l->t;
	}
	smp_client_config_init(&cfg);
	cfg.max_window = max_window;
	r = smp_client_new(e, t, &cfg, &c);
	if (r < 0)
		die("client", r);
	smp_upload_options_init(&opts);
	opts.check_state = false;

	t0 = now_s();
	c0 = cpu_s();
	r = smp_image_upload(c, &src, &opts, NULL, on_done, &run, NULL, NULL);
	if (r < 0)
		die("upload", r);
	while (!run.done)
		sd_event_run(e, UINT64_MAX);
	wall = now_s() - t0;
	cpu = cpu_s() - c0;
	if (run.error < 0)
		die("upload failed", run.error);

	printf("  client upload, %s, %u in flight  %6.2f ms CPU/MB  %6.1f MB/s  %5u chunks  %3.0f%% CPU\n",
	       framed ? "serial link" : "packet link", smp_client_get_bulk_window(c),
	       cpu * 1e3 / ((double)size / 1e6), (double)size / wall / 1e6, run.res.chunks,
	       100.0 * cpu / wall);
	smp_client_unref(c);
	sd_event_unref(e);
	waitpid(pid, &status, 0);
	free(img);
}

int main(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "chunks", required_argument, NULL, 'c' },
		{ "mb", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	unsigned chunks = 200000, mb = 16;
	int opt;

	while ((opt = getopt_long(argc, argv, "c:m:h", options, NULL)) >= 0)
		switch (opt) {
		case 'c':
			chunks = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'm':
			mb = (unsigned)strtoul(optarg, NULL, 10);
			break;
		default:
			printf("usage: %s [--chunks N] [--mb MB]\n"
			       "  --chunks N  upload chunks for the codec figure (default 200000)\n"
			       "  --mb MB     image size for the client figures (default 16)\n",
			       argv[0]);
			return opt == 'h' ? EXIT_SUCCESS : EXIT_FAILURE;
		}
	chunks = MAX(chunks, 2000u);
	mb = MAX(mb, 1u);
	signal(SIGPIPE, SIG_IGN);

	printf("bench-libsmp");
	for (int i = 1; i < argc; i++)
		printf(" %s", argv[i]);
	printf("\n(1) codec  (2) framing  (3) client, device in another process on a socketpair\n");
	bench_chunk_codec(chunks);
	bench_serial(chunks / 4);
	for (unsigned framed = 0; framed < 2; framed++) {
		bench_upload(framed, (size_t)mb << 20, 1);
		bench_upload(framed, (size_t)mb << 20, 4);
	}
	return EXIT_SUCCESS;
}
