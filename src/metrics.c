/*
 * metrics.c - metric storage and Prometheus rendering (see metrics.h).
 * Writers are the module threads; the renderer runs in an HTTP thread.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "chatbattle/err.h"
#include "chatbattle/metrics.h"
#include "chatbattle/ring.h"

_Atomic uint64_t cb_metric_values[CB_M_COUNT];

enum kind { COUNTER, GAUGE, HISTOGRAM };

static const struct {
	const char *name;
	const char *help;
	enum kind kind;
} metric_desc[CB_M_COUNT] = {
#define CB_COUNTER(name, help) {#name, help, COUNTER},
#define CB_GAUGE(name, help) {#name, help, GAUGE},
#define CB_HISTOGRAM(name, help) {#name, help, HISTOGRAM},
#include "metrics.def"
#undef CB_COUNTER
#undef CB_GAUGE
#undef CB_HISTOGRAM
};

static const uint64_t bucket_us[CB_HIST_BUCKETS - 1] = {
	50,	 100,	  250,	   500,	    1000,    2500,    5000,
	10000,	 25000,	  50000,   75000,   100000,  150000,  200000,
	250000,	 300000,  400000,  500000,  750000,  1000000, 2500000,
	5000000, 10000000};

/* Histograms are stored apart; cb_metric_values[id] holds their count. */
static _Atomic uint64_t hist_buckets[CB_M_COUNT][CB_HIST_BUCKETS];
static _Atomic uint64_t hist_sum[CB_M_COUNT];

static const struct cb_ring *rings[16];
static int nrings;

static _Atomic int health[CB_DEP_COUNT];
static const char *const dep_names[CB_DEP_COUNT] = {"kafka", "cassandra",
						    "irc", "cache"};

void cb_metric_observe_us(enum cb_metric_id id, uint64_t us)
{
	int b = 0;

	while (b < CB_HIST_BUCKETS - 1 && us > bucket_us[b])
		b++;
	atomic_fetch_add_explicit(&hist_buckets[id][b], 1,
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&hist_sum[id], us, memory_order_relaxed);
	atomic_fetch_add_explicit(&cb_metric_values[id], 1,
				  memory_order_relaxed);
}

uint64_t cb_metric_quantile_us(enum cb_metric_id id, double q)
{
	uint64_t counts[CB_HIST_BUCKETS], total = 0, seen = 0;

	for (int b = 0; b < CB_HIST_BUCKETS; b++) {
		counts[b] = atomic_load_explicit(&hist_buckets[id][b],
						 memory_order_relaxed);
		total += counts[b];
	}
	if (total == 0)
		return 0;
	for (int b = 0; b < CB_HIST_BUCKETS; b++) {
		double rank = q * (double)total;

		if ((double)(seen + counts[b]) >= rank && counts[b] > 0) {
			uint64_t lo = b == 0 ? 0 : bucket_us[b - 1];
			uint64_t hi = b < CB_HIST_BUCKETS - 1 ? bucket_us[b]
							      : lo * 2;
			double frac = (rank - (double)seen) / (double)counts[b];

			return lo + (uint64_t)(frac * (double)(hi - lo));
		}
		seen += counts[b];
	}
	return bucket_us[CB_HIST_BUCKETS - 2];
}

void cb_metrics_reset(void)
{
	for (int i = 0; i < CB_M_COUNT; i++) {
		atomic_store(&cb_metric_values[i], 0);
		atomic_store(&hist_sum[i], 0);
		for (int b = 0; b < CB_HIST_BUCKETS; b++)
			atomic_store(&hist_buckets[i][b], 0);
	}
}

void cb_metrics_register_ring(const struct cb_ring *r)
{
	if (nrings < (int)(sizeof(rings) / sizeof(rings[0])))
		rings[nrings++] = r;
}

void cb_health_set(enum cb_dep dep, enum cb_dep_state state)
{
	atomic_store_explicit(&health[dep], (int)state, memory_order_relaxed);
}

enum cb_dep_state cb_health_get(enum cb_dep dep)
{
	return (enum cb_dep_state)atomic_load_explicit(&health[dep],
						       memory_order_relaxed);
}

const char *cb_dep_name(enum cb_dep dep)
{
	return dep >= 0 && dep < CB_DEP_COUNT ? dep_names[dep] : "?";
}

uint64_t cb_process_rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long size = 0, resident = 0;

	if (f == NULL)
		return 0;
	if (fscanf(f, "%lu %lu", &size, &resident) != 2)
		resident = 0;
	fclose(f);
	return (uint64_t)resident * 4096u;
}

uint64_t cb_process_peak_rss_bytes(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (uint64_t)ru.ru_maxrss * 1024u;
}

uint64_t cb_process_cpu_us(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (uint64_t)ru.ru_utime.tv_sec * 1000000u +
	       (uint64_t)ru.ru_utime.tv_usec +
	       (uint64_t)ru.ru_stime.tv_sec * 1000000u +
	       (uint64_t)ru.ru_stime.tv_usec;
}

struct buf {
	char *p;
	size_t len, cap;
	int err;
};

static void put(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->err)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->err = CB_E_INVAL;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		{
			size_t cap = b->cap * 2 + (size_t)n;
			char *p = realloc(b->p, cap);

			if (p == NULL) {
				b->err = CB_E_NOMEM;
				return;
			}
			b->p = p;
			b->cap = cap;
		}
	}
}

int cb_metrics_render(char **out, size_t *out_len)
{
	struct buf b = {malloc(16384), 0, 16384, 0};

	*out = NULL;
	*out_len = 0;
	if (b.p == NULL)
		return CB_E_NOMEM;
	for (int i = 0; i < CB_M_COUNT; i++) {
		const char *n = metric_desc[i].name;

		put(&b, "# HELP chatbattle_%s %s\n", n, metric_desc[i].help);
		if (metric_desc[i].kind == HISTOGRAM) {
			uint64_t cum = 0;

			put(&b, "# TYPE chatbattle_%s histogram\n", n);
			for (int k = 0; k < CB_HIST_BUCKETS; k++) {
				cum += atomic_load_explicit(
					&hist_buckets[i][k],
					memory_order_relaxed);
				if (k < CB_HIST_BUCKETS - 1)
					put(&b,
					    "chatbattle_%s_bucket{le=\"%g\"} "
					    "%llu\n",
					    n, (double)bucket_us[k] / 1e6,
					    (unsigned long long)cum);
				else
					put(&b,
					    "chatbattle_%s_bucket{le=\"+Inf\"} "
					    "%llu\n",
					    n, (unsigned long long)cum);
			}
			put(&b, "chatbattle_%s_sum %g\n", n,
			    (double)atomic_load_explicit(
				    &hist_sum[i], memory_order_relaxed) /
				    1e6);
			put(&b, "chatbattle_%s_count %llu\n", n,
			    (unsigned long long)cb_metric_get(
				    (enum cb_metric_id)i));
			continue;
		}
		put(&b, "# TYPE chatbattle_%s %s\n", n,
		    metric_desc[i].kind == COUNTER ? "counter" : "gauge");
		put(&b, "chatbattle_%s %llu\n", n,
		    (unsigned long long)cb_metric_get((enum cb_metric_id)i));
	}
	put(&b, "# HELP chatbattle_ring_used_bytes bytes queued in a ring\n"
		"# TYPE chatbattle_ring_used_bytes gauge\n");
	for (int r = 0; r < nrings; r++) {
		struct cb_ring_stats s;

		cb_ring_stats(rings[r], &s);
		put(&b, "chatbattle_ring_used_bytes{ring=\"%s\"} %llu\n",
		    s.name, (unsigned long long)s.used);
	}
	put(&b, "# HELP chatbattle_ring_capacity_bytes ring size\n"
		"# TYPE chatbattle_ring_capacity_bytes gauge\n");
	for (int r = 0; r < nrings; r++) {
		struct cb_ring_stats s;

		cb_ring_stats(rings[r], &s);
		put(&b, "chatbattle_ring_capacity_bytes{ring=\"%s\"} %llu\n",
		    s.name, (unsigned long long)s.capacity);
	}
	put(&b, "# HELP chatbattle_ring_records_total records through a ring\n"
		"# TYPE chatbattle_ring_records_total counter\n");
	for (int r = 0; r < nrings; r++) {
		struct cb_ring_stats s;

		cb_ring_stats(rings[r], &s);
		put(&b, "chatbattle_ring_records_total{ring=\"%s\"} %llu\n",
		    s.name, (unsigned long long)s.records_out);
	}
	put(&b, "# HELP chatbattle_ring_full_waits_total times a ring's "
		"producer waited for space (back-pressure; nothing dropped)\n"
		"# TYPE chatbattle_ring_full_waits_total counter\n");
	for (int r = 0; r < nrings; r++) {
		struct cb_ring_stats s;

		cb_ring_stats(rings[r], &s);
		put(&b, "chatbattle_ring_full_waits_total{ring=\"%s\"} %llu\n",
		    s.name, (unsigned long long)s.full_waits);
	}
	put(&b, "# HELP chatbattle_ring_drops_total records dropped by a "
		"ring (always 0: full rings apply back-pressure)\n"
		"# TYPE chatbattle_ring_drops_total counter\n");
	for (int r = 0; r < nrings; r++) {
		struct cb_ring_stats s;

		cb_ring_stats(rings[r], &s);
		put(&b, "chatbattle_ring_drops_total{ring=\"%s\"} 0\n", s.name);
	}
	put(&b, "# HELP chatbattle_dependency_up dependency state "
		"(1 up, 0 down or unknown)\n"
		"# TYPE chatbattle_dependency_up gauge\n");
	for (int d = 0; d < CB_DEP_COUNT; d++)
		put(&b, "chatbattle_dependency_up{dependency=\"%s\"} %d\n",
		    dep_names[d],
		    cb_health_get((enum cb_dep)d) == CB_DEP_UP ? 1 : 0);
	put(&b,
	    "# HELP process_resident_memory_bytes resident set size\n"
	    "# TYPE process_resident_memory_bytes gauge\n"
	    "process_resident_memory_bytes %llu\n"
	    "# HELP process_cpu_seconds_total user and system CPU time\n"
	    "# TYPE process_cpu_seconds_total counter\n"
	    "process_cpu_seconds_total %.6f\n",
	    (unsigned long long)cb_process_rss_bytes(),
	    (double)cb_process_cpu_us() / 1e6);
	if (b.err) {
		free(b.p);
		return b.err;
	}
	*out = b.p;
	*out_len = b.len;
	return 0;
}
