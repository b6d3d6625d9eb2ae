/*
 * simulate.h - `chatbattle simulate`, a Twitch-compatible IRC server for
 * demos, tests and benchmarks (src/simulate.c).  Single-threaded: one
 * libevent loop serves the chat clients (TLS with a self-signed certificate
 * generated at start, or plain TCP), generates chat per channel, and answers
 * the loopback control interface that tests use for the ground truth.
 * docs/ingest.md describes the behaviour and the control protocol.
 *
 * Ground truth: a line counts as sent for a channel only when it was written
 * to at least one client that had joined that channel; a generated line goes
 * to every client that joined the channel (so two readers of one channel get
 * the same lines).  Generation waits while no client has joined a channel and
 * while a joined client's output backlog exceeds sim_buffer_kbytes, so
 * nothing is ever dropped inside the simulator.
 */
#ifndef CHATBATTLE_SIMULATE_H
#define CHATBATTLE_SIMULATE_H

#include <stddef.h>

struct cb_config;
struct cb_sim;

/*
 * Creates a simulator from the sim_* settings: generates the key and
 * certificate (written as PEM to sim_cert_file when TLS is on), binds the
 * chat and control listeners (port 0: any free port).  cfg must outlive the
 * simulator.  Returns 0 or a negative cb_err with the reason.
 */
int cb_sim_new(struct cb_sim **out, const struct cb_config *cfg, char *errstr,
	       size_t errstr_size);

/* The bound ports and the certificate path (valid after cb_sim_new). */
int cb_sim_port(const struct cb_sim *sim);
int cb_sim_control_port(const struct cb_sim *sim);
const char *cb_sim_cert_file(const struct cb_sim *sim);

/* Makes cb_sim_run() stop on SIGINT and SIGTERM (the command uses it;
 * in-process tests do not). */
int cb_sim_handle_signals(struct cb_sim *sim);

/*
 * Runs the event loop in the calling thread until cb_sim_stop(), the
 * control command "quit", a signal (cb_sim_handle_signals), or - with
 * sim_count or sim_replay - the end of the generated chat (after a final
 * sync with every client).  Returns 0 or a negative cb_err.
 */
int cb_sim_run(struct cb_sim *sim);

/* Any thread: makes cb_sim_run() return soon. */
void cb_sim_stop(struct cb_sim *sim);

/* Writes the statistics JSON (the control command "stats") into buf
 * (NUL-terminated, truncated to size).  Only while the loop is not running
 * or from its thread.  Returns the length it needed. */
size_t cb_sim_stats_json(struct cb_sim *sim, char *buf, size_t size);

/* Frees everything; the loop must not be running. */
void cb_sim_free(struct cb_sim *sim);

/* `chatbattle simulate`. */
int cb_cmd_simulate(const struct cb_config *cfg);

#endif
