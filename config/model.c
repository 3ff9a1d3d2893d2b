/*
 * model.c - the few functions of the configuration model itself.
 */
#include "config/model.h"

#include <stdlib.h>

#include <stdarg.h>
#include <stdio.h>

void cfg_err_set(struct cfg_err *err, int status, const char *field, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	err->status = status;
	err->tenant[0] = '\0';
	snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

enum cfg_tls_mode cfg_tenant_tls(const struct cfg_tenant *t, const struct cfg_static *st)
{
	if (t && t->tls != CFG_TLS_INHERIT)
		return t->tls;
	/* The static default is never INHERIT; without a static config the
	 * documented default applies. */
	if (st && st->tls.dflt != CFG_TLS_INHERIT)
		return st->tls.dflt;
	return CFG_TLS_INTERNAL;
}

struct cfg_tenant_stats *cfg_tenant_stats_new(void)
{
	struct cfg_tenant_stats *st = calloc(1, sizeof *st);
	if (st)
		atomic_init(&st->refs, 1);
	return st;
}

struct cfg_tenant_stats *cfg_tenant_stats_retain(struct cfg_tenant_stats *st)
{
	if (st)
		atomic_fetch_add_explicit(&st->refs, 1, memory_order_relaxed);
	return st;
}

void cfg_tenant_stats_release(struct cfg_tenant_stats *st)
{
	if (st && atomic_fetch_sub_explicit(&st->refs, 1, memory_order_acq_rel) == 1)
		free(st);
}

void cfg_limits_release(struct cfg_limits *l)
{
	if (l && atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) == 1)
		l->free(l);
}
