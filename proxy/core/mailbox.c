#include "proxy/core/mailbox.h"

#include <pthread.h>
#include <stdlib.h>

struct mailbox_msg {
	struct mailbox_msg *next;
	mailbox_fn fn;
	void *arg;
};

struct mailbox {
	pthread_mutex_t lock;
	struct mailbox_msg *head, **tail;
	struct event *wake;
};

/* mailbox_drain: take the whole queue at once, then run it unlocked so a
 * message may post further messages without deadlock. */
static void mailbox_drain(evutil_socket_t fd, short what, void *arg)
{
	struct mailbox *mb = arg;
	(void)fd;
	(void)what;
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
	mb->wake = event_new(base, -1, 0, mailbox_drain, mb);
	if (!mb->wake) {
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
	*mb->tail = m;
	mb->tail = &m->next;
	pthread_mutex_unlock(&mb->lock);
	/* Thread-safe with evthread_use_pthreads(); coalesces repeated wakes. */
	event_active(mb->wake, 0, 0);
	return 0;
}

void mailbox_free(struct mailbox *mb)
{
	if (!mb)
		return;
	event_free(mb->wake);
	struct mailbox_msg *m = mb->head;
	while (m) {
		struct mailbox_msg *next = m->next;
		free(m);
		m = next;
	}
	pthread_mutex_destroy(&mb->lock);
	free(mb);
}
