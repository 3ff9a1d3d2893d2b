/*
 * fileio.c - capped reads, private directories and atomic replacement of the
 * files in the state directory (certificates, keys, their metadata).
 */
#include "config/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* fileio_tmp_seq: makes temporary names unique within the process; the pid
 * makes them unique between two instances sharing a state dir (upgrades). */
static _Atomic unsigned fileio_tmp_seq;

char *fileio_read(const char *path, size_t cap, size_t *len, char *errbuf, size_t errlen)
{
	char *buf = NULL;
	size_t used = 0;
	struct stat sb;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(errbuf, errlen, "%s: %s", path, strerror(e));
		errno = e;
		return NULL;
	}
	if (fstat(fd, &sb) < 0) {
		snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(sb.st_mode)) {
		snprintf(errbuf, errlen, "%s: not a regular file", path);
		goto fail;
	}
	if ((unsigned long long)sb.st_size > cap) {
		snprintf(errbuf, errlen, "%s: larger than %zu bytes", path, cap);
		goto fail;
	}
	/* Read up to cap + 1 whatever fstat said: the file may grow meanwhile. */
	buf = malloc(cap + 2);
	if (!buf) {
		snprintf(errbuf, errlen, "%s: out of memory", path);
		goto fail;
	}
	for (;;) {
		ssize_t n = read(fd, buf + used, cap + 1 - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		used += (size_t)n;
		if (used > cap) {
			snprintf(errbuf, errlen, "%s: larger than %zu bytes", path, cap);
			goto fail;
		}
	}
	close(fd);
	buf[used] = '\0';
	*len = used;
	return buf;
fail:
	free(buf);
	close(fd);
	errno = EINVAL;
	return NULL;
}

/* fileio_mkdir_one: mkdir that accepts an existing directory. */
static int fileio_mkdir_one(const char *path, mode_t mode, char *errbuf, size_t errlen)
{
	struct stat sb;
	if (mkdir(path, mode) == 0)
		return 0;
	if (errno != EEXIST) {
		snprintf(errbuf, errlen, "cannot create directory %s: %s", path, strerror(errno));
		return -1;
	}
	if (stat(path, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
		snprintf(errbuf, errlen, "%s exists and is not a directory", path);
		return -1;
	}
	return 0;
}

int fileio_mkdirs(const char *path, mode_t mode, mode_t parent_mode, char *errbuf,
		  size_t errlen)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof buf) {
		snprintf(errbuf, errlen, "directory path \"%.64s\" is empty or too long", path);
		return -1;
	}
	memcpy(buf, path, n + 1);
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/' || p[-1] == '/')
			continue;
		*p = '\0';
		int rc = fileio_mkdir_one(buf, parent_mode, errbuf, errlen);
		*p = '/';
		if (rc < 0)
			return -1;
	}
	return fileio_mkdir_one(buf, mode, errbuf, errlen);
}

/* fileio_write_all: write(2) until done. */
static int fileio_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fileio_stage(const char *dir, const char *name, const void *data, size_t len, mode_t mode,
		 struct fileio_staged *st, char *errbuf, size_t errlen)
{
	unsigned seq = atomic_fetch_add(&fileio_tmp_seq, 1);
	int a = snprintf(st->dst, sizeof st->dst, "%s/%s", dir, name);
	int b = snprintf(st->tmp, sizeof st->tmp, "%s/.%s.tmp.%ld.%u", dir, name, (long)getpid(),
			 seq);
	if (a < 0 || b < 0 || (size_t)a >= sizeof st->dst || (size_t)b >= sizeof st->tmp) {
		snprintf(errbuf, errlen, "%s/%s: path too long", dir, name);
		st->tmp[0] = '\0';
		return -1;
	}
	/* A leftover from a crashed process with the same pid is ours to replace. */
	unlink(st->tmp);
	int fd = open(st->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0) {
		snprintf(errbuf, errlen, "cannot create %s: %s", st->tmp, strerror(errno));
		st->tmp[0] = '\0';
		return -1;
	}
	if (fileio_write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		snprintf(errbuf, errlen, "cannot write %s: %s", st->tmp, strerror(errno));
		close(fd);
		fileio_abort(st);
		return -1;
	}
	if (close(fd) < 0) {
		snprintf(errbuf, errlen, "cannot write %s: %s", st->tmp, strerror(errno));
		fileio_abort(st);
		return -1;
	}
	return 0;
}

int fileio_commit(struct fileio_staged *st, char *errbuf, size_t errlen)
{
	if (rename(st->tmp, st->dst) < 0) {
		snprintf(errbuf, errlen, "cannot rename %s to %s: %s", st->tmp, st->dst,
			 strerror(errno));
		fileio_abort(st);
		return -1;
	}
	st->tmp[0] = '\0';
	return 0;
}

void fileio_abort(struct fileio_staged *st)
{
	if (st && st->tmp[0]) {
		unlink(st->tmp);
		st->tmp[0] = '\0';
	}
}

int fileio_sync_dir(const char *dir, char *errbuf, size_t errlen)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0) {
		snprintf(errbuf, errlen, "cannot sync directory %s: %s", dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int fileio_write_atomic(const char *dir, const char *name, const void *data, size_t len,
			mode_t mode, char *errbuf, size_t errlen)
{
	struct fileio_staged st;
	if (fileio_stage(dir, name, data, len, mode, &st, errbuf, errlen) < 0)
		return -1;
	if (fileio_commit(&st, errbuf, errlen) < 0)
		return -1;
	return fileio_sync_dir(dir, errbuf, errlen);
}
