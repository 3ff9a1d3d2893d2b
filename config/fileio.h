/*
 * fileio.h - the small file operations the control plane and the certificate code need: reading a
 * whole file with a size cap, creating private directories, and replacing
 * files atomically (temp file, fsync, rename, fsync of the directory).
 * Main thread only (blocking disk I/O). Errors are one sentence in errbuf,
 * naming the path and the OS error.
 */
#pragma once

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

/* fileio_read: the whole regular file at path, NUL-terminated (the NUL is
 * not counted in *len). Files larger than cap are refused. Caller frees;
 * NULL with a message on failure (errno is kept for ENOENT checks). */
char *fileio_read(const char *path, size_t cap, size_t *len, char *errbuf, size_t errlen);

/* fileio_mkdirs: create path with mode if missing, and any missing parents
 * with parent_mode. An existing directory is left as it is. -1 on failure. */
int fileio_mkdirs(const char *path, mode_t mode, mode_t parent_mode, char *errbuf,
		  size_t errlen);

/* A file written under a temporary name, waiting to be renamed over dst. */
struct fileio_staged {
	char tmp[PATH_MAX];
	char dst[PATH_MAX];
};

/* fileio_stage: write data to a new temporary file beside dir/name, created
 * with O_EXCL and mode (so a key is never readable by others, not even
 * briefly), and fsync it. On failure nothing is left behind. */
int fileio_stage(const char *dir, const char *name, const void *data, size_t len, mode_t mode,
		 struct fileio_staged *st, char *errbuf, size_t errlen);
/* fileio_commit: rename the staged file over its destination. */
int fileio_commit(struct fileio_staged *st, char *errbuf, size_t errlen);
/* fileio_abort: remove a staged file that will not be committed. */
void fileio_abort(struct fileio_staged *st);
/* fileio_sync_dir: fsync dir so that renames into it survive a crash. */
int fileio_sync_dir(const char *dir, char *errbuf, size_t errlen);

/* fileio_write_atomic: stage, commit and sync the directory in one call. */
int fileio_write_atomic(const char *dir, const char *name, const void *data, size_t len,
			mode_t mode, char *errbuf, size_t errlen);
