/*
 * sd.h - the systemd notify protocol, spoken directly over $NOTIFY_SOCKET
 * (no libsystemd).  Main thread only.
 */
#ifndef CHATBATTLE_SD_H
#define CHATBATTLE_SD_H

#include <stdint.h>

/* Sends state ("READY=1", "STOPPING=1", "WATCHDOG=1", "STATUS=...") when
 * $NOTIFY_SOCKET is set.  Returns 1 if sent, 0 if not under systemd, or a
 * negative cb_err. */
int cb_sd_notify(const char *state);

/* The watchdog interval systemd asked for ($WATCHDOG_USEC, checked against
 * $WATCHDOG_PID), in microseconds, or 0 when there is none. */
uint64_t cb_sd_watchdog_usec(void);

#endif
