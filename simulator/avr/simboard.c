/*
 * simboard: an Arduino Uno (ATmega328P, 16 MHz) in simavr, its UART on a pseudo-terminal.
 *
 * Built against libsimavr; the shape follows simavr's board_simduino example, which
 * cannot keep Optiboot in its bootloader: Optiboot starts the application unless the
 * reset flags (MCUSR) say EXTRF, an external reset. This harness adds what a real
 * Uno's board does:
 *   - BOOTRST: every reset starts at the bootloader's address.
 *   - The reset pin: power-on, SIGUSR1 (the reset button) and the auto-reset circuit
 *     reset the chip with MCUSR = EXTRF, so Optiboot listens for about a second.
 *   - Auto-reset: on a real Uno, opening the port drops DTR and a capacitor turns that
 *     into a reset pulse. A pty has no DTR, so the first bytes from the host after a
 *     quiet spell stand for "the port was just opened": the chip is held in reset for
 *     HOLD_MS (those bytes are lost, as on real hardware), then starts the bootloader.
 *   - The watchdog reset (WDRF, not EXTRF) that Optiboot uses to leave, after which
 *     Optiboot jumps to the application.
 *
 * usage: simboard BOOTLOADER.hex [--app APP.hex] [--link PATH] [--no-auto-reset]
 * Prints the pty's path on stdout's first line; logs resets, and the first time after a
 * reset that the application runs, on stderr; SIGTERM ends it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <pty.h>

#include "sim_avr.h"
#include "sim_hex.h"
#include "sim_regbit.h"
#include "avr_uart.h"

#define QUIET_S 2.0   /* host silence after which new bytes count as a port open */
#define HOLD_MS 100   /* how long the auto-reset pulse keeps the chip in reset */
#define POLL_EVERY 512

static avr_t *avr;
static int master_fd = -1, slave_fd = -1;
static avr_irq_t *uart_input;
static int xon;
static uint8_t rx[8192];
static size_t rx_len, rx_pos;
static uint32_t boot_base;
static volatile sig_atomic_t stop_flag, button_flag;
static int in_app;            /* the pc has left the bootloader since the last reset */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_uart_output(struct avr_irq_t *irq, uint32_t value, void *param)
{
	(void)irq; (void)param;
	uint8_t byte = value;
	/* Nobody reading and the pty buffer full: the byte is lost, as on a real line. */
	if (write(master_fd, &byte, 1) < 0 && errno != EAGAIN)
		perror("simboard: write");
}

static void on_xon(struct avr_irq_t *irq, uint32_t value, void *param)
{
	(void)irq; (void)value; (void)param;
	xon = 1;
}

static void on_xoff(struct avr_irq_t *irq, uint32_t value, void *param)
{
	(void)irq; (void)value; (void)param;
	xon = 0;
}

static void external_reset(const char *why)
{
	avr_reset(avr);
	avr->pc = boot_base;                       /* BOOTRST fuse */
	avr_regbit_clear(avr, avr->reset_flags.porf);
	avr_regbit_clear(avr, avr->reset_flags.wdrf);
	avr_regbit_set(avr, avr->reset_flags.extrf);
	xon = 0;
	rx_len = rx_pos = 0;
	in_app = 0;
	fprintf(stderr, "simboard: external reset (%s)\n", why);
}

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		button_flag = 1;
	else
		stop_flag = 1;
}

static uint8_t *load_hex(const char *path, uint32_t *size, uint32_t *base)
{
	uint8_t *data = read_ihex_file(path, size, base);
	if (!data) {
		fprintf(stderr, "simboard: cannot load %s\n", path);
		exit(2);
	}
	return data;
}

int main(int argc, char *argv[])
{
	const char *boot_path = NULL, *app_path = NULL, *link_path = NULL;
	int auto_reset = 1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--app") && i + 1 < argc)
			app_path = argv[++i];
		else if (!strcmp(argv[i], "--link") && i + 1 < argc)
			link_path = argv[++i];
		else if (!strcmp(argv[i], "--no-auto-reset"))
			auto_reset = 0;
		else if (argv[i][0] != '-' && !boot_path)
			boot_path = argv[i];
		else {
			fprintf(stderr, "usage: %s BOOTLOADER.hex [--app APP.hex] [--link PATH] "
					"[--no-auto-reset]\n", argv[0]);
			return 2;
		}
	}
	if (!boot_path) {
		fprintf(stderr, "simboard: give the bootloader's .hex\n");
		return 2;
	}

	avr = avr_make_mcu_by_name("atmega328p");
	if (!avr) {
		fprintf(stderr, "simboard: cannot make an atmega328p\n");
		return 1;
	}
	avr_init(avr);
	avr->frequency = 16000000;
	avr->log = LOG_WARNING;
	memset(avr->flash, 0xff, avr->flashend + 1);  /* erased flash */

	uint32_t size;
	uint8_t *boot = load_hex(boot_path, &size, &boot_base);
	memcpy(avr->flash + boot_base, boot, size);
	free(boot);
	if (app_path) {
		uint32_t app_base;
		uint8_t *app = load_hex(app_path, &size, &app_base);
		memcpy(avr->flash + app_base, app, size);
		free(app);
	}
	avr->reset_pc = boot_base;
	avr->codeend = avr->flashend;

	if (openpty(&master_fd, &slave_fd, NULL, NULL, NULL) < 0) {
		perror("simboard: openpty");
		return 1;
	}
	struct termios tio;
	tcgetattr(slave_fd, &tio);
	cfmakeraw(&tio);
	tcsetattr(slave_fd, TCSANOW, &tio);
	fcntl(master_fd, F_SETFL, fcntl(master_fd, F_GETFL) | O_NONBLOCK);
	const char *pty_path = ttyname(slave_fd);
	if (link_path) {
		unlink(link_path);
		if (symlink(pty_path, link_path) < 0)
			perror("simboard: symlink");
	}

	/* Not the UART's own stdout dump: the bytes go to the pty. */
	uint32_t flags = 0;
	avr_ioctl(avr, AVR_IOCTL_UART_GET_FLAGS('0'), &flags);
	/* POLL_SLEEP would usleep() on every poll of an idle UART, which stretches
	 * Optiboot's one-second window to minutes; the main loop paces to the wall clock
	 * instead, so timeouts in the firmware last what they would on a real board. */
	flags &= ~(AVR_UART_FLAG_STDIO | AVR_UART_FLAG_POLL_SLEEP);
	avr_ioctl(avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);
	uart_input = avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_INPUT);
	avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT),
			on_uart_output, NULL);
	avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XON),
			on_xon, NULL);
	avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XOFF),
			on_xoff, NULL);

	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGUSR1, on_signal);

	printf("%s\n", pty_path);
	fflush(stdout);
	external_reset("power-on");

	double last_host = -1e9, hold_until = 0;
	double epoch = now_s();           /* wall time at simulated cycle `epoch_cycle` */
	avr_cycle_count_t epoch_cycle = avr->cycle;
	unsigned long ticks = 0;
	int holding = 0;
	while (!stop_flag) {
		if (++ticks % POLL_EVERY == 0 || holding) {
			uint8_t buf[512];
			ssize_t n = read(master_fd, buf, sizeof(buf));
			double t = now_s();
			if (n > 0) {
				if (auto_reset && t - last_host > QUIET_S) {
					holding = 1;
					hold_until = t + HOLD_MS / 1000.0;
				}
				last_host = t;
				if (!holding) {
					if (rx_pos == rx_len)
						rx_pos = rx_len = 0;
					size_t room = sizeof(rx) - rx_len;
					size_t take = (size_t)n < room ? (size_t)n : room;
					memcpy(rx + rx_len, buf, take);
					rx_len += take;
				}
			}
			if (holding) {
				if (t < hold_until) {
					usleep(1000);
					continue;
				}
				holding = 0;
				external_reset("auto-reset: the host opened the port");
			}
			if (!in_app && avr->pc < boot_base) {
				in_app = 1;   /* tests wait for this instead of guessing a time */
				fprintf(stderr, "simboard: running the application\n");
			}
			/* Real-time pacing: never run ahead of the wall clock by more than 2 ms. */
			if (avr->cycle < epoch_cycle) {          /* a reset restarted the count */
				epoch = t;
				epoch_cycle = avr->cycle;
			}
			double ahead = (double)(avr->cycle - epoch_cycle) / avr->frequency - (t - epoch);
			if (ahead > 0.002)
				usleep((useconds_t)(ahead * 1e6));
			else if (ahead < -0.5) {                 /* too slow to keep up: don't catch up */
				epoch = t;
				epoch_cycle = avr->cycle;
			}
		}
		if (button_flag) {
			button_flag = 0;
			external_reset("reset button");
		}
		while (xon && rx_pos < rx_len)
			avr_raise_irq(uart_input, rx[rx_pos++]);
		int state = avr_run(avr);
		if (state == cpu_Done || state == cpu_Crashed) {
			fprintf(stderr, "simboard: the core stopped (state %d) at pc %#x\n",
					state, avr->pc);
			break;
		}
	}
	if (link_path)
		unlink(link_path);
	close(master_fd);
	close(slave_fd);
	avr_terminate(avr);
	return stop_flag ? 0 : 1;
}
