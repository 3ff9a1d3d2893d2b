/*
 * response.h - what portier answers by itself: error pages (short plain
 * text with the request id, no internals), redirects, respond services.
 */
#pragma once

#include <stddef.h>

/* response_reason: the reason phrase of status ("Unknown" if none). */
const char *response_reason(int status);

/* response_error_body: "STATUS REASON\nrequest id: ID\n" into buf; returns length. */
size_t response_error_body(char *buf, size_t cap, int status, const char *request_id);
