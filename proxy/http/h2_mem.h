/*
 * h2_mem.h - the allocator portier's nghttp2 sessions use. nghttp2 keeps a
 * 16 KiB frame buffer for a session's whole life, of which sending frames
 * writes the first page or two (bodies go out without a copy). Taken from
 * malloc's heap, which an edge under load has written all over, all of it
 * stays resident: DHAT put it at 16,394 bytes of each idle HTTP/2
 * connection, the largest block after none. Blocks of H2_MEM_MAP_MIN bytes
 * or more are therefore pages of their own (mmap), resident only where
 * written; smaller ones come from malloc.
 */
#pragma once

#include <stdbool.h>

#include <nghttp2/nghttp2.h>

#define H2_MEM_MAP_MIN (16 * 1024)

/* h2_mem: for nghttp2_session_server_new3; shared, stateless. */
nghttp2_mem *h2_mem(void);

/* h2_mem_is_mapped: p, from h2_mem, is pages of its own. */
bool h2_mem_is_mapped(const void *p);
