#include "proxy/core/mailbox.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct mailbox_msg {
	struct mailbox_msg *next;
	mailbox_fn fn;
	void *arg;
};

/* The wake is an eventfd, not event_active: a worker's loop runs without
 * libevent's locks (EVENT_BASE_FLAG_NOLOCK), so no other thread may touch
 * its base; a write(2) to the eventfd is what crosses threads. */
struct mailbox {
	pthread_mutex_t lock;
	struct mailbox_msg *head, **tail;
	int efd;
	struct event *wake;
};

/* mailbox_drain: take the whole queue at once, then run it unlocked so a
 * message may post further messages without deadlock. */
static void mailbox_drain(evutil_socket_t fd, short what, void *arg)
{
	struct mailbox *mb = arg;
	(void)what;
	/* Reset the wake before taking the queue: a post after the take then
	 * finds it empty and wakes us again, so nothing is stranded. */
	uint64_t n;
	while (read(fd, &n, sizeof n) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&mb->lock);
	struct mailbox_msg *m = mb->head;
	mb->head = NULL;
	mb->tail = &mb->head;
	pthread_mutex_unlock(&mb->lock);
	while (m) {
		struct mailbox_msg *next = m->next;
		m->fn(m->arg);
		free(m);
		m = next;
	}
}

struct mailbox *mailbox_new(struct event_base *base)
{
	struct mailbox *mb = calloc(1, sizeof *mb);
	if (!mb)
		return NULL;
	pthread_mutex_init(&mb->lock, NULL);
	mb->tail = &mb->head;
	mb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	mb->wake = mb->efd < 0 ? NULL
			       : event_new(base, mb->efd, EV_READ | EV_PERSIST, mailbox_drain, mb);
	if (!mb->wake || event_add(mb->wake, NULL) < 0) {
		if (mb->wake)
			event_free(mb->wake);
		if (mb->efd >= 0)
			close(mb->efd);
		pthread_mutex_destroy(&mb->lock);
		free(mb);
		return NULL;
	}
	return mb;
}

int mailbox_post(struct mailbox *mb, mailbox_fn fn, void *arg)
{
	struct mailbox_msg *m = malloc(sizeof *m);
	if (!m)
		return -1;
	m->next = NULL;
	m->fn = fn;
	m->arg = arg;
	pthread_mutex_lock(&mb->lock);
	bool was_empty = mb->head == NULL;
	*mb->tail = m;
	mb->tail = &m->next;
	pthread_mutex_unlock(&mb->lock);
	/* One wake per batch: while the queue is not empty one is pending. */
	if (was_empty) {
		uint64_t one = 1;
		while (write(mb->efd, &one, sizeof one) < 0 && errno == EINTR)
			;
	}
	return 0;
}

void mailbox_free(struct mailbox *mb)
{
	if (!mb)
		return;
	event_free(mb->wake);
	close(mb->efd);
	struct mailbox_msg *m = mb->head;
	while (m) {
		struct mailbox_msg *next = m->next;
		free(m);
		m = next;
	}
	pthread_mutex_destroy(&mb->lock);
	free(mb);
}
