/*
 * provision_purge.c - a bounded recursive removal that works on directory
 * file descriptors (openat/unlinkat with O_NOFOLLOW), so a symbolic link
 * planted inside the tenant's directory is removed, never followed.
 */
#include "config/portierctl/provision_purge.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* prov_purge_tree: remove the directory name inside parent and its contents. */
static int prov_purge_tree(int parent, const char *name, const char *shown, unsigned depth,
			   unsigned long *entries, char *err, size_t errlen)
{
	int fd = -1, rc = -1;
	DIR *d = NULL;
	struct dirent *ent;

	if (depth > PROV_PURGE_DEPTH_MAX) {
		snprintf(err, errlen, "%s: nested deeper than %d directories; not removed", shown,
			 PROV_PURGE_DEPTH_MAX);
		return -1;
	}
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		snprintf(err, errlen, "%s: %s", shown, strerror(errno));
		goto out;
	}
	fd = -1; /* owned by d now */
	while ((errno = 0, ent = readdir(d))) {
		struct stat sb;

		if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
			continue;
		if (++*entries > PROV_PURGE_ENTRIES_MAX) {
			snprintf(err, errlen, "%s: more than %d entries; not removed", shown,
				 PROV_PURGE_ENTRIES_MAX);
			goto out;
		}
		if (fstatat(dirfd(d), ent->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
			snprintf(err, errlen, "%s/%s: %s", shown, ent->d_name, strerror(errno));
			goto out;
		}
		if (S_ISDIR(sb.st_mode)) {
			char sub[PATH_MAX];
			size_t sl = strlen(shown), nl = strlen(ent->d_name);

			if (sl + 1 + nl >= sizeof(sub)) {
				snprintf(err, errlen, "%s: path too long; not removed", shown);
				goto out;
			}
			memcpy(sub, shown, sl);
			sub[sl] = '/';
			memcpy(sub + sl + 1, ent->d_name, nl + 1);
			if (prov_purge_tree(dirfd(d), ent->d_name, sub, depth + 1, entries, err,
					    errlen) < 0)
				goto out;
		} else if (unlinkat(dirfd(d), ent->d_name, 0) < 0) {
			snprintf(err, errlen, "%s/%s: %s", shown, ent->d_name, strerror(errno));
			goto out;
		}
	}
	if (errno) {
		snprintf(err, errlen, "%s: %s", shown, strerror(errno));
		goto out;
	}
	if (unlinkat(parent, name, AT_REMOVEDIR) < 0) {
		snprintf(err, errlen, "%s: %s", shown, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (d)
		closedir(d);
	if (fd >= 0)
		close(fd);
	return rc;
}

int prov_purge(const char *out, const char *name, char *err, size_t errlen)
{
	char shown[PATH_MAX];
	unsigned long entries = 0;
	struct stat sb;
	int outfd, rc = -1;

	snprintf(shown, sizeof(shown), "%s/%s", out, name);
	if (!*name || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		snprintf(err, errlen, "%s: not a single directory name; not removed", shown);
		return -1;
	}
	outfd = open(out, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (outfd < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", out, strerror(errno));
		return -1;
	}
	if (fstatat(outfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			rc = 0;
		else
			snprintf(err, errlen, "%s: %s", shown, strerror(errno));
		goto out;
	}
	if (S_ISLNK(sb.st_mode)) {
		snprintf(err, errlen, "%s is a symbolic link; not removed", shown);
		goto out;
	}
	if (!S_ISDIR(sb.st_mode)) {
		snprintf(err, errlen, "%s is not a directory; not removed", shown);
		goto out;
	}
	if (prov_purge_tree(outfd, name, shown, 0, &entries, err, errlen) < 0)
		goto out;
	rc = 1;
out:
	close(outfd);
	return rc;
}
