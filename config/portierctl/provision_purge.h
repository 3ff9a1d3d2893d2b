/*
 * provision_purge.h - removing a tenant's directory for deprovision --purge.
 */
#pragma once

#include <stddef.h>

#define PROV_PURGE_DEPTH_MAX 16       /* subdirectories below the tenant's */
#define PROV_PURGE_ENTRIES_MAX 100000 /* entries removed in all */

/* prov_purge: remove out/name and everything below it. name must be a single
 * path component; out/name must be a real directory (a symbolic link is
 * refused, never followed), and nothing below it is followed either, so
 * nothing outside out/name is touched. Returns 1 when removed, 0 when
 * out/name does not exist, -1 with err. */
int prov_purge(const char *out, const char *name, char *err, size_t errlen);
