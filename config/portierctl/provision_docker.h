/*
 * provision_docker.h - running `docker compose` for provision --up and
 * deprovision --down: found in $PATH, run with fork/exec (no shell).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* prov_docker_find: the path of the first executable `docker` in $PATH
 * (empty and relative entries ignored) into out; false when there is none. */
bool prov_docker_find(char *out, size_t outlen);

/* prov_docker_run: run path with argv (NULL-terminated; argv[0] the name),
 * sharing stdin/stdout/stderr, and wait. Returns the exit status (128 + the
 * signal number when killed), or -1 with err when it could not be started. */
int prov_docker_run(const char *path, char *const argv[], char *err, size_t errlen);

/* prov_docker_cmdline: argv as one line an operator can paste into a shell
 * (arguments quoted when needed); truncated to outlen. */
void prov_docker_cmdline(char *const argv[], char *out, size_t outlen);
