/*
 * rule_regex.c - how rules use PCRE2: compile options, resource limits and
 * the per-thread state matching needs.
 *
 * Semantics follow Traefik v3, which runs Go's regexp.MatchString: a search,
 * not implicitly anchored, so HostRegexp(`example\.com`) also matches
 * "www.example.com.evil.net"; operators anchor with ^ and $ themselves.
 * Patterns are UTF-8 (as Go's are); subjects that are not valid UTF-8 are
 * still searched (PCRE2_MATCH_INVALID_UTF) rather than failing.
 *
 * Compiled patterns are shared read-only by every worker thread. Match data,
 * the match context (with its limits) and the JIT stack are per thread,
 * created on first use and freed at thread exit by a pthread key destructor.
 * A match that hits a limit reports -1 ("unknown"), never a guess, so a
 * hostile pattern costs a bounded amount of CPU and cannot make a negated
 * matcher succeed.
 */
#include "config/rule_ast.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* About a few milliseconds of backtracking at worst: far above what a sane
 * routing pattern needs on a 16 KiB path, far below a stalled worker. */
#define RULE_RE_MATCH_LIMIT 1000000u
#define RULE_RE_DEPTH_LIMIT 10000u
#define RULE_RE_HEAP_LIMIT_KIB 8192u
#define RULE_RE_JIT_STACK_MIN (32u * 1024u)
#define RULE_RE_JIT_STACK_MAX (512u * 1024u)
/* Claims compiled from text by rule_host_matches (HostRegexp claims are rare). */
#define RULE_RE_CACHE_SLOTS 16u

#define RULE_RE_OPTIONS (PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_NEVER_BACKSLASH_C)

struct rule_re_cached {
	uint64_t hash;
	char *pat;
	pcre2_code *re;
};

struct rule_re_thread {
	pcre2_match_data *md;
	pcre2_match_context *mctx;
	pcre2_jit_stack *jit;
	struct rule_re_cached cache[RULE_RE_CACHE_SLOTS];
};

static pthread_once_t rule_re_once = PTHREAD_ONCE_INIT;
static pthread_key_t rule_re_key;
static bool rule_re_key_ok;
static _Thread_local struct rule_re_thread *rule_re_self;

pcre2_code *rule_regex_compile(const char *pat, size_t len, bool caseless,
			       char *errbuf, size_t errlen)
{
	PCRE2_UCHAR msg[160];
	PCRE2_SIZE erroff = 0;
	int errcode = 0;
	uint32_t opts = RULE_RE_OPTIONS | (caseless ? PCRE2_CASELESS : 0);
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, len, opts, &errcode, &erroff, NULL);

	if (!re) {
		if (pcre2_get_error_message(errcode, msg, sizeof(msg)) < 0)
			strcpy((char *)msg, "unknown error");
		rule_errf(errbuf, errlen, "PCRE2: %s at offset %zu", (const char *)msg, (size_t)erroff);
		return NULL;
	}
	/* JIT is an optimisation: without it (unsupported CPU, no executable
	 * memory) the interpreter gives the same answers. */
	(void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
	return re;
}

static void rule_re_thread_free(void *arg)
{
	struct rule_re_thread *t = arg;

	if (!t)
		return;
	for (size_t i = 0; i < RULE_RE_CACHE_SLOTS; i++) {
		free(t->cache[i].pat);
		pcre2_code_free(t->cache[i].re);
	}
	pcre2_match_data_free(t->md);
	pcre2_match_context_free(t->mctx);
	pcre2_jit_stack_free(t->jit);
	free(t);
	if (rule_re_self == t)
		rule_re_self = NULL;
}

static void rule_re_key_init(void)
{
	rule_re_key_ok = pthread_key_create(&rule_re_key, rule_re_thread_free) == 0;
}

/* rule_re_thread_get: this thread's matching state, created on first use;
 * NULL when memory runs out (the caller reports "unknown"). */
static struct rule_re_thread *rule_re_thread_get(void)
{
	struct rule_re_thread *t = rule_re_self;

	if (t)
		return t;
	pthread_once(&rule_re_once, rule_re_key_init);
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	/* One pair is enough: only "did it match" is asked, and pcre2_match
	 * still reports a match when the vector is too small for all groups. */
	t->md = pcre2_match_data_create(1, NULL);
	t->mctx = pcre2_match_context_create(NULL);
	t->jit = pcre2_jit_stack_create(RULE_RE_JIT_STACK_MIN, RULE_RE_JIT_STACK_MAX, NULL);
	if (!t->md || !t->mctx)
		goto fail;
	pcre2_set_match_limit(t->mctx, RULE_RE_MATCH_LIMIT);
	pcre2_set_depth_limit(t->mctx, RULE_RE_DEPTH_LIMIT);
	pcre2_set_heap_limit(t->mctx, RULE_RE_HEAP_LIMIT_KIB);
	if (t->jit)
		pcre2_jit_stack_assign(t->mctx, NULL, t->jit);
	if (rule_re_key_ok && pthread_setspecific(rule_re_key, t) != 0)
		goto fail;
	rule_re_self = t;
	return t;
fail:
	rule_re_thread_free(t);
	return NULL;
}

int rule_regex_match(const pcre2_code *re, const char *s, size_t len)
{
	struct rule_re_thread *t = rule_re_thread_get();
	int rc;

	if (!t || !re)
		return -1;
	if (!s) {
		s = "";
		len = 0;
	}
	rc = pcre2_match(re, (PCRE2_SPTR)s, len, 0, 0, t->md, t->mctx);
	if (rc >= 0)
		return 1;
	return rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
}

static uint64_t rule_re_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3u;
	return h;
}

/* rule_re_cache_get: the compiled form of caseless pattern pat for this
 * thread, compiling it into its cache slot on a miss. */
static const pcre2_code *rule_re_cache_get(struct rule_re_thread *t, const char *pat)
{
	uint64_t h = rule_re_hash(pat);
	struct rule_re_cached *c = &t->cache[h % RULE_RE_CACHE_SLOTS];
	pcre2_code *re;
	char *copy;

	if (c->re && c->hash == h && strcmp(c->pat, pat) == 0)
		return c->re;
	re = rule_regex_compile(pat, strlen(pat), true, NULL, 0);
	copy = strdup(pat);
	if (!re || !copy) {
		pcre2_code_free(re);
		free(copy);
		return NULL;
	}
	free(c->pat);
	pcre2_code_free(c->re);
	c->hash = h;
	c->pat = copy;
	c->re = re;
	return re;
}

int rule_regex_match_text(const char *pat, const char *s, size_t len)
{
	struct rule_re_thread *t = rule_re_thread_get();
	const pcre2_code *re;

	if (!t || !pat)
		return -1;
	re = rule_re_cache_get(t, pat);
	return re ? rule_regex_match(re, s, len) : -1;
}
