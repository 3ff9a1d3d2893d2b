/*
 * pid_cache.c - getpid() without a system call. OpenSSL's random generator
 * asks for the pid on every draw to notice a fork (six times per full
 * handshake), and glibc stopped caching it in 2.25. The cache is filled
 * before main, while the process has one thread, and emptied in a forked
 * child by pthread_atfork. A vfork child would see its parent's pid: portier
 * makes none.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

static _Atomic pid_t pid_cached;

static void pid_cache_forget(void)
{
	atomic_store_explicit(&pid_cached, 0, memory_order_relaxed);
}

__attribute__((constructor)) static void pid_cache_fill(void)
{
	pthread_atfork(NULL, NULL, pid_cache_forget);
	atomic_store_explicit(&pid_cached, (pid_t)syscall(SYS_getpid), memory_order_relaxed);
}

pid_t getpid(void)
{
	pid_t pid = atomic_load_explicit(&pid_cached, memory_order_relaxed);
	if (!pid) {
		pid = (pid_t)syscall(SYS_getpid);
		atomic_store_explicit(&pid_cached, pid, memory_order_relaxed);
	}
	return pid;
}
