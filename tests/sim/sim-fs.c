/* sim-fs: a device file system (a host directory behind a mount point) and the FS group */
#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "sim-device.h"
#include "sim-fs.h"
#include "sim-util.h"
#include "smp-cbor.h"
#include "smp-error.h"

/* CONFIG_MCUMGR_GRP_FS_PATH_LEN, ..._FILE_AUTOMATIC_IDLE_CLOSE_TIME. */
#define SIM_FS_PATH_LEN 64
#define SIM_FS_IDLE_CLOSE_US (4000 * 1000ULL)
/* fs_mgmt_config.h: what the download response needs besides the data. */
#define SIM_FS_DL_OVERHEAD (8 + (9 + 1) + (1 + 3 + 4) + (1 + 4 + 4) + (1 + 2 + 1) + (1 + 3 + 4))
/* Files larger than this do not fit the simulated partition. */
#define SIM_FS_MAX_FILE (4 * 1024 * 1024)
#define SIM_FS_BOOT_LOG_MAX 4096

enum sim_fs_state {
	SIM_FS_NONE,
	SIM_FS_UPLOAD,
	SIM_FS_DOWNLOAD,
};

struct sim_fs {
	char *root;
	char *mount;
	struct sim_flash_stats *stats;
	enum sim_fs_state state;
	uint64_t off;
	uint64_t len;
	char path[SIM_FS_PATH_LEN + 1];
	const void *transport;
	uint64_t last_use_us;
};

uint32_t sim_crc32(uint32_t crc, const uint8_t *p, size_t n)
{
	crc = ~crc;
	while (n--) {
		crc ^= *p++;
		for (unsigned k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320U & (0U - (crc & 1)));
	}
	return ~crc;
}

int sim_fs_new(const char *root, const char *mount, struct sim_flash_stats *stats,
	       struct sim_fs **ret)
{
	struct sim_fs *fs = calloc(1, sizeof(*fs));
	int r;

	if (!fs)
		return -ENOMEM;
	fs->root = strdup(root);
	fs->mount = strdup(mount);
	fs->stats = stats;
	if (!fs->root || !fs->mount) {
		sim_fs_free(fs);
		return -ENOMEM;
	}
	r = sim_mkdir_p(root);
	if (r < 0) {
		sim_fs_free(fs);
		return r;
	}
	*ret = fs;
	return 0;
}

struct sim_fs *sim_fs_free(struct sim_fs *fs)
{
	if (!fs)
		return NULL;
	free(fs->root);
	free(fs->mount);
	free(fs);
	return NULL;
}

static void sim_fs_cleanup(struct sim_fs *fs)
{
	fs->state = SIM_FS_NONE;
	fs->off = 0;
	fs->len = 0;
	fs->path[0] = 0;
	fs->transport = NULL;
}

void sim_fs_power_off(struct sim_fs *fs)
{
	sim_fs_cleanup(fs);
}

/* Maps a device path to the host file behind it: 0 and a new string,
 * -EINVAL for a malformed name, -ENOENT for a path outside the mount point
 * (Zephyr's VFS finds no file system there). An empty host suffix is the
 * mount point itself (a directory). */
static int sim_fs_host_path(struct sim_fs *fs, const char *path, char **ret)
{
	size_t m = strlen(fs->mount);
	const char *rest, *p;

	if (path[0] != '/' || strlen(path) <= 1)
		return -EINVAL;
	if (strncmp(path, fs->mount, m) != 0 || (path[m] != 0 && path[m] != '/'))
		return -ENOENT;
	rest = path + m;
	/* Every component must be a plain name. */
	for (p = rest; *p;) {
		const char *end;
		size_t n;

		if (*p == '/')
			p++;
		end = strchrnul(p, '/');
		n = (size_t)(end - p);
		if ((n == 0 && *end) || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.'))
			return -EINVAL;
		p = end;
	}
	*ret = sim_strdup_printf("%s%s", fs->root, rest);
	return *ret ? 0 : -ENOMEM;
}

/* fs_mgmt_filelen(): 0 and the size, or an FS group error. */
static int sim_fs_filelen(struct sim_fs *fs, const char *path, uint64_t *ret)
{
	_cleanup_free_ char *host = NULL;
	struct stat st;
	int r;

	r = sim_fs_host_path(fs, path, &host);
	if (r == -EINVAL)
		return SIM_FS_ERR_FILE_INVALID_NAME;
	if (r == -ENOENT)
		return SIM_FS_ERR_FILE_NOT_FOUND;
	if (r < 0)
		return 1;
	if (lstat(host, &st) < 0)
		return errno == ENOENT || errno == ENOTDIR ? SIM_FS_ERR_FILE_NOT_FOUND : 1;
	if (!S_ISREG(st.st_mode))
		return SIM_FS_ERR_FILE_IS_DIRECTORY;
	*ret = (uint64_t)st.st_size;
	return 0;
}

/* Decodes "name" into path: 0, or the code to return (EINVAL). */
static int sim_fs_name(struct sim_ctx *c, char path[static SIM_FS_PATH_LEN + 1])
{
	const char *name = NULL;
	size_t len = 0;

	if (!sim_req_text(c, "name", &name, &len, NULL) || len == 0 || len > SIM_FS_PATH_LEN)
		return SMP_RC_EINVAL;
	memcpy(path, name, len);
	path[len] = 0;
	return 0;
}

/* Every FS command first lets the idle timer do its work. */
static struct sim_fs *sim_fs_enter(struct sim_ctx *c)
{
	struct sim_fs *fs = sim_device_fs(c->dev);
	uint64_t now = sim_now_usec();

	if (fs->state != SIM_FS_NONE && now - fs->last_use_us >= SIM_FS_IDLE_CLOSE_US)
		sim_fs_cleanup(fs);
	return fs;
}

static void sim_fs_finish_check(struct sim_fs *fs)
{
	if (fs->len > 0 && fs->off >= fs->len)
		sim_fs_cleanup(fs);
	else
		fs->last_use_us = sim_now_usec();
}

static void sim_fs_account(struct sim_ctx *c, bool write, size_t n)
{
	struct sim_fs *fs = sim_device_fs(c->dev);
	uint64_t us = write ? n * sim_device_config(c->dev)->flash_write_us_per_kib / 1024 : 0;

	if (write)
		c->busy_us += us;
	if (!fs->stats)
		return;
	if (write) {
		fs->stats->flash_write_calls++;
		fs->stats->bytes_written += (uint32_t)n;
		fs->stats->flash_write_time_us += (uint32_t)us;
	} else {
		fs->stats->flash_read_calls++;
		fs->stats->bytes_read += (uint32_t)n;
	}
}

int sim_fs_download(struct sim_ctx *c)
{
	struct sim_fs *fs = sim_fs_enter(c);
	char path[SIM_FS_PATH_LEN + 1];
	_cleanup_free_ char *host = NULL;
	_cleanup_free_ uint8_t *chunk = NULL;
	uint64_t off = UINT64_MAX;
	size_t max = sim_device_config(c->dev)->buf_size - SIM_FS_DL_OVERHEAD;
	ssize_t n = 0;
	int fd, rc;

	if (!sim_req_u64(c, "off", &off, NULL))
		return SMP_RC_EINVAL;
	rc = sim_fs_name(c, path);
	if (rc != 0 || off == UINT64_MAX)
		return SMP_RC_EINVAL;
	if (c->link != fs->transport || fs->state != SIM_FS_DOWNLOAD || strcmp(path, fs->path))
		sim_fs_cleanup(fs);
	if (fs->state == SIM_FS_NONE) {
		rc = sim_fs_filelen(fs, path, &fs->len);
		if (rc != 0) {
			sim_rsp_err(c, SMP_GROUP_FS, (uint16_t)rc);
			return 0;
		}
		fs->off = 0;
		strcpy(fs->path, path);
		fs->state = SIM_FS_DOWNLOAD;
		fs->transport = c->link;
	}
	if (sim_fs_host_path(fs, path, &host) < 0)
		return SMP_RC_ENOMEM;
	chunk = malloc(max ? max : 1);
	if (!chunk)
		return SMP_RC_ENOMEM;
	fd = open(host, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		n = pread(fd, chunk, max, (off_t)MIN(off, (uint64_t)SIM_FS_MAX_FILE));
		close(fd);
	}
	if (fd < 0 || n < 0) {
		sim_rsp_err(c, SMP_GROUP_FS, SIM_FS_ERR_FILE_READ_FAILED);
		sim_fs_cleanup(fs);
		return 0;
	}
	sim_fs_account(c, false, (size_t)n);
	fs->off = off + (uint64_t)n;
	smp_cbor_put_text(&c->rsp, "off");
	smp_cbor_put_uint(&c->rsp, off);
	smp_cbor_put_text(&c->rsp, "data");
	smp_cbor_put_bytes(&c->rsp, chunk, (size_t)n);
	if (off == 0) {
		smp_cbor_put_text(&c->rsp, "len");
		smp_cbor_put_uint(&c->rsp, fs->len);
	}
	sim_fs_finish_check(fs);
	return 0;
}

int sim_fs_upload(struct sim_ctx *c)
{
	struct sim_fs *fs = sim_fs_enter(c);
	char path[SIM_FS_PATH_LEN + 1];
	_cleanup_free_ char *host = NULL;
	const uint8_t *data = NULL;
	size_t data_len = 0;
	uint64_t off = UINT64_MAX, len = UINT64_MAX, existing = 0;
	int fd, rc;

	if (!sim_req_u64(c, "off", &off, NULL) ||
	    !sim_req_bytes(c, "data", &data, &data_len, NULL) || !sim_req_u64(c, "len", &len, NULL))
		return SMP_RC_EINVAL;
	rc = sim_fs_name(c, path);
	if (rc != 0 || off == UINT64_MAX || (off == 0 && len == UINT64_MAX))
		return SMP_RC_EINVAL;
	if (c->link != fs->transport || fs->state != SIM_FS_UPLOAD || strcmp(path, fs->path))
		sim_fs_cleanup(fs);
	rc = sim_fs_host_path(fs, path, &host);
	if (rc == -ENOMEM)
		return SMP_RC_ENOMEM;
	if (fs->state == SIM_FS_NONE) {
		/* fs_open(FS_O_CREATE | FS_O_WRITE) */
		if (rc == -EINVAL)
			rc = SIM_FS_ERR_FILE_INVALID_NAME;
		else if (rc == -ENOENT)
			rc = SIM_FS_ERR_MOUNT_POINT_NOT_FOUND;
		else {
			fd = open(host, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
			if (fd < 0)
				rc = errno == ENOENT || errno == ENOTDIR
					 ? SIM_FS_ERR_MOUNT_POINT_NOT_FOUND
				     : errno == EROFS ? SIM_FS_ERR_READ_ONLY_FILESYSTEM
						      : 1;
			else {
				close(fd);
				rc = 0;
			}
		}
		if (rc != 0) {
			sim_rsp_err(c, SMP_GROUP_FS, (uint16_t)rc);
			return 0;
		}
		fs->off = 0;
		strcpy(fs->path, path);
		fs->state = SIM_FS_UPLOAD;
		fs->transport = c->link;
	}
	if (off == 0) {
		fs->len = len;
		rc = sim_fs_filelen(fs, path, &existing);
	} else if (fs->off == 0)
		rc = sim_fs_filelen(fs, path, &fs->off);
	if (rc != 0) {
		sim_rsp_err(c, SMP_GROUP_FS, (uint16_t)rc);
		sim_fs_cleanup(fs);
		return 0;
	}
	if (off > 0 && off != fs->off) {
		/* The client decides from "len" whether to resume or restart. */
		sim_rsp_err(c, SMP_GROUP_FS, SIM_FS_ERR_FILE_OFFSET_NOT_VALID);
		smp_cbor_put_text(&c->rsp, "len");
		smp_cbor_put_uint(&c->rsp, fs->off);
		sim_fs_cleanup(fs);
		return 0;
	}
	if (data_len > 0) {
		ssize_t n;

		if (fs->off + data_len > SIM_FS_MAX_FILE) {
			sim_rsp_err(c, SMP_GROUP_FS, SIM_FS_ERR_FILE_WRITE_FAILED);
			sim_fs_cleanup(fs);
			return 0;
		}
		fd = open(host, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0) {
			sim_rsp_err(c, SMP_GROUP_FS, SIM_FS_ERR_FILE_WRITE_FAILED);
			sim_fs_cleanup(fs);
			return 0;
		}
		if (off == 0 && existing != 0 && ftruncate(fd, 0) < 0) {
			close(fd);
			sim_rsp_err(c, SMP_GROUP_FS, SIM_FS_ERR_FILE_TRUNCATE_FAILED);
			sim_fs_cleanup(fs);
			return 0;
		}
		n = pwrite(fd, data, data_len, (off_t)fs->off);
		close(fd);
		if (n < 0 || (size_t)n != data_len) {
			sim_rsp_err(c, SMP_GROUP_FS, SIM_FS_ERR_FILE_WRITE_FAILED);
			sim_fs_cleanup(fs);
			return 0;
		}
		sim_fs_account(c, true, data_len);
		fs->off += data_len;
	}
	smp_cbor_put_text(&c->rsp, "off");
	smp_cbor_put_uint(&c->rsp, fs->off);
	sim_fs_finish_check(fs);
	return 0;
}

int sim_fs_status(struct sim_ctx *c)
{
	struct sim_fs *fs = sim_fs_enter(c);
	char path[SIM_FS_PATH_LEN + 1];
	uint64_t len;
	int rc;

	rc = sim_fs_name(c, path);
	if (rc != 0)
		return rc;
	rc = sim_fs_filelen(fs, path, &len);
	if (rc != 0) {
		sim_rsp_err(c, SMP_GROUP_FS, (uint16_t)rc);
		return 0;
	}
	smp_cbor_put_text(&c->rsp, "len");
	smp_cbor_put_uint(&c->rsp, len);
	return 0;
}

int sim_fs_hash(struct sim_ctx *c)
{
	struct sim_fs *fs = sim_fs_enter(c);
	char path[SIM_FS_PATH_LEN + 1], type[9] = "crc32";
	_cleanup_free_ char *host = NULL;
	const char *t = NULL;
	size_t t_len = 0;
	uint64_t off = 0, len = UINT64_MAX, file_len, done = 0;
	struct sha256_ctx sha;
	uint32_t crc = 0;
	bool is_sha;
	uint8_t buf[4096];
	int fd, rc;

	if (!sim_req_text(c, "type", &t, &t_len, NULL) || !sim_req_u64(c, "off", &off, NULL) ||
	    !sim_req_u64(c, "len", &len, NULL))
		return SMP_RC_EINVAL;
	rc = sim_fs_name(c, path);
	if (rc != 0 || t_len > 8 || len == 0)
		return SMP_RC_EINVAL;
	if (t_len) {
		memcpy(type, t, t_len);
		type[t_len] = 0;
	}
	if (strcmp(type, "crc32") && strcmp(type, "sha256")) {
		sim_rsp_err(c, SMP_GROUP_FS, SIM_FS_ERR_CHECKSUM_HASH_NOT_FOUND);
		return 0;
	}
	is_sha = !strcmp(type, "sha256");
	rc = sim_fs_filelen(fs, path, &file_len);
	if (rc != 0) {
		sim_rsp_err(c, SMP_GROUP_FS, (uint16_t)rc);
		return 0;
	}
	if (file_len <= off) {
		sim_rsp_err(c, SMP_GROUP_FS,
			    file_len == 0 ? SIM_FS_ERR_FILE_EMPTY
					  : SIM_FS_ERR_FILE_OFFSET_LARGER_THAN_FILE);
		return 0;
	}
	if (sim_fs_host_path(fs, path, &host) < 0)
		return SMP_RC_ENOMEM;
	fd = open(host, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		sim_rsp_err(c, SMP_GROUP_FS, SIM_FS_ERR_FILE_NOT_FOUND);
		return 0;
	}
	sha256_init(&sha);
	while (done < len) {
		ssize_t n = pread(fd, buf, (size_t)MIN((uint64_t)sizeof(buf), len - done),
				  (off_t)(off + done));

		if (n <= 0)
			break;
		if (is_sha)
			sha256_update(&sha, (size_t)n, buf);
		else
			crc = sim_crc32(crc, buf, (size_t)n);
		done += (uint64_t)n;
	}
	close(fd);
	sim_fs_account(c, false, (size_t)done);
	smp_cbor_put_text(&c->rsp, "type");
	smp_cbor_put_text(&c->rsp, type);
	if (off != 0) {
		smp_cbor_put_text(&c->rsp, "off");
		smp_cbor_put_uint(&c->rsp, off);
	}
	smp_cbor_put_text(&c->rsp, "len");
	smp_cbor_put_uint(&c->rsp, done);
	smp_cbor_put_text(&c->rsp, "output");
	if (is_sha) {
		uint8_t digest[SHA256_DIGEST_SIZE];

		sha256_digest(&sha, sizeof(digest), digest);
		smp_cbor_put_bytes(&c->rsp, digest, sizeof(digest));
	} else
		smp_cbor_put_uint(&c->rsp, crc);
	return 0;
}

int sim_fs_types(struct sim_ctx *c)
{
	static const struct {
		const char *name;
		unsigned format, size;
	} types[] = {{"crc32", 0, 4}, {"sha256", 1, 32}};

	smp_cbor_put_text(&c->rsp, "types");
	smp_cbor_put_map_indef(&c->rsp);
	for (size_t i = 0; i < ELEMENTSOF(types); i++) {
		smp_cbor_put_text(&c->rsp, types[i].name);
		smp_cbor_put_map_indef(&c->rsp);
		smp_cbor_put_text(&c->rsp, "format");
		smp_cbor_put_uint(&c->rsp, types[i].format);
		smp_cbor_put_text(&c->rsp, "size");
		smp_cbor_put_uint(&c->rsp, types[i].size);
		smp_cbor_put_break(&c->rsp);
	}
	smp_cbor_put_break(&c->rsp);
	return 0;
}

int sim_fs_close(struct sim_ctx *c)
{
	sim_fs_cleanup(sim_device_fs(c->dev));
	return 0;
}

void sim_fs_boot(struct sim_fs *fs, const char *line)
{
	_cleanup_free_ char *dir = sim_strdup_printf("%s/logs", fs->root);
	_cleanup_free_ char *file = sim_strdup_printf("%s/logs/boot.log", fs->root);
	struct stat st;
	int fd;

	if (!dir || !file || sim_mkdir_p(dir) < 0)
		return;
	/* Like a log with rotation: start over when it grows too big. */
	fd = open(file,
		  O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW |
		      (stat(file, &st) == 0 && st.st_size > SIM_FS_BOOT_LOG_MAX ? O_TRUNC : 0),
		  0644);
	if (fd < 0)
		return;
	if (write(fd, line, strlen(line)) < 0)
		sim_log(SIM_LOG_DEBUG, NULL, "boot log write failed");
	close(fd);
}

int sim_fs_erase(struct sim_fs *fs)
{
	int r;

	sim_fs_cleanup(fs);
	r = sim_rm_rf(fs->root);
	if (r < 0)
		return r;
	return sim_mkdir_p(fs->root);
}
