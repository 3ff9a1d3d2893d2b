/*
 * model.c - the few functions of the configuration model itself.
 */
#include "config/model.h"

#include <stdarg.h>
#include <stdio.h>

void cfg_err_set(struct cfg_err *err, int status, const char *field, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	err->status = status;
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
