/*
 * mailbox.h - run a function on another thread's event loop. The only way
 * threads talk: the main thread publishes snapshots and answers certificate
 * requests this way, workers ask the main thread for certificates.
 */
#pragma once

#include <event2/event.h>

struct mailbox;
typedef void (*mailbox_fn)(void *arg);

/* mailbox_new: a mailbox served by base's loop (call from its thread). */
struct mailbox *mailbox_new(struct event_base *base);

/* mailbox_post: queue fn(arg) to run on the mailbox's loop, in posting
 * order. Safe from any thread. Returns -1 (fn not queued) on allocation failure. */
int mailbox_post(struct mailbox *mb, mailbox_fn fn, void *arg);

/* mailbox_free: drop undelivered messages (their args leak unless the
 * owner tracks them: post nothing after the loop stopped). */
void mailbox_free(struct mailbox *mb);
