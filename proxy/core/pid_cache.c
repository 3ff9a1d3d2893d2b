/*
 * pid_cache.c - getpid() without a system call. OpenSSL's random generator
 * asks for the pid on every draw to notice a fork (six times per full
 * handshake), and glibc stopped caching it in 2.25. The value only changes
 * in a forked child, which pthread_atfork refreshes.
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

static void pid_cache_init(void)
{
	pthread_atfork(NULL, NULL, pid_cache_forget);
}

pid_t getpid(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pid_t pid = atomic_load_explicit(&pid_cached, memory_order_relaxed);
	if (pid)
		return pid;
	pthread_once(&once, pid_cache_init);
	pid = (pid_t)syscall(SYS_getpid);
	atomic_store_explicit(&pid_cached, pid, memory_order_relaxed);
	return pid;
}
