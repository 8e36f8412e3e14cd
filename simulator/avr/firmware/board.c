/*
 * A tiny Simpul sensor board firmware for the ATmega328P (Arduino Uno, 16 MHz).
 *
 * Speaks the Simpul board protocol (firmware_bridge/board_protocol.py): frames are
 *   COBS( ver | type | seq | payload | crc_lo crc_hi ) 0x00
 * with CRC-16/CCITT-FALSE (avr-libc _crc_xmodem_update from 0xFFFF) over ver..payload.
 * It sends HELLO at start and when asked (HELLO_REQUEST), then a READING every
 * READ_EVERY_MS with two channels whose values are fixed test patterns, so the host can
 * check them: temperature 25.0 + n/10 degC (n counts readings mod 10) and PM2.5 12 ug/m3.
 */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/wdt.h>
#include <stdint.h>
#include <string.h>
#include <util/crc16.h>

#define BAUD_UBRR 16          /* 115200 with U2X at 16 MHz, as Optiboot and Arduino do */
#define READ_EVERY_MS 200

#define PROTO_VERSION 1
#define MSG_HELLO 0x01
#define MSG_READING 0x03
#define MSG_HELLO_REQUEST 0x0A

static volatile uint32_t millis;
static uint8_t tx_seq;

ISR(TIMER1_COMPA_vect) { millis++; }

/* A watchdog reset leaves the watchdog running (WDRF forces WDE on); a bootloader that
 * left through the watchdog may not have stopped it, so stop it before anything else,
 * as avr-libc's documentation recommends. */
void stop_watchdog(void) __attribute__((naked, used, section(".init3")));
void stop_watchdog(void)
{
	MCUSR = 0;
	wdt_disable();
}

static uint32_t now_ms(void)
{
	uint32_t t;
	cli();
	t = millis;
	sei();
	return t;
}

static void uart_put(uint8_t c)
{
	while (!(UCSR0A & _BV(UDRE0)))
		;
	UDR0 = c;
}

/* COBS-encode `len` bytes and send them, then the 0x00 delimiter. */
static void send_cobs(const uint8_t *data, uint8_t len)
{
	uint8_t block[255];
	uint8_t n = 0;
	for (uint8_t i = 0; i <= len; i++) {
		if (i == len || data[i] == 0) {
			uart_put(n + 1);
			for (uint8_t k = 0; k < n; k++)
				uart_put(block[k]);
			n = 0;
		} else {
			block[n++] = data[i];
			if (n == 254) {
				uart_put(255);
				for (uint8_t k = 0; k < n; k++)
					uart_put(block[k]);
				n = 0;
			}
		}
	}
	uart_put(0);
}

static void send_frame(uint8_t type, const uint8_t *payload, uint8_t len)
{
	uint8_t body[64];
	body[0] = PROTO_VERSION;
	body[1] = type;
	body[2] = tx_seq++;
	memcpy(body + 3, payload, len);
	uint16_t crc = 0xFFFF;
	for (uint8_t i = 0; i < 3 + len; i++)
		crc = _crc_xmodem_update(crc, body[i]);
	body[3 + len] = crc & 0xFF;
	body[4 + len] = crc >> 8;
	send_cobs(body, 5 + len);
}

static uint8_t put_u32(uint8_t *p, uint32_t v)
{
	p[0] = v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24;
	return 4;
}

static void send_hello(void)
{
	static const uint8_t hello[] = {
		1, 1,                                   /* protocol min, max */
		'S', 'I', 'M', 'P', 'U', 'L', '0', '1', /* board id */
		0, 1, 0,                                /* firmware 0.1.0 */
		2,                                      /* channels */
		0, 1, (uint8_t)-1, 4, 't', 'e', 'm', 'p',   /* ch 0: degC, x10^-1 */
		1, 3, 0, 4, 'p', 'm', '2', '5',             /* ch 1: ug/m3, x10^0 */
	};
	send_frame(MSG_HELLO, hello, sizeof(hello));
}

static void send_reading(uint8_t n)
{
	uint8_t p[5 + 2 * 6];
	uint8_t i = put_u32(p, now_ms());
	p[i++] = 2;
	p[i++] = 0; p[i++] = 0; i += put_u32(p + i, 250 + n % 10);
	p[i++] = 1; p[i++] = 0; i += put_u32(p + i, 12);
	send_frame(MSG_READING, p, i);
}

/* Receive side: collect one COBS frame up to its 0x00, decode, check, act. */
static uint8_t rx_buf[64];
static uint8_t rx_len;

static void handle_frame(void)
{
	uint8_t out[64];
	uint8_t o = 0, i = 0;
	while (i < rx_len) {
		uint8_t code = rx_buf[i++];
		if (code == 0)
			return;
		for (uint8_t k = 1; k < code; k++) {
			if (i >= rx_len)
				return;
			out[o++] = rx_buf[i++];
		}
		if (code < 255 && i < rx_len)
			out[o++] = 0;
	}
	if (o < 5)
		return;
	uint16_t crc = 0xFFFF;
	for (uint8_t k = 0; k < o - 2; k++)
		crc = _crc_xmodem_update(crc, out[k]);
	if ((crc & 0xFF) != out[o - 2] || (crc >> 8) != out[o - 1])
		return;
	if (out[1] == MSG_HELLO_REQUEST)
		send_hello();
}

static void poll_rx(void)
{
	while (UCSR0A & _BV(RXC0)) {
		uint8_t c = UDR0;
		if (c == 0) {
			handle_frame();
			rx_len = 0;
		} else if (rx_len < sizeof(rx_buf)) {
			rx_buf[rx_len++] = c;
		} else {
			rx_len = 0;  /* too long for anything we understand: drop it */
		}
	}
}

int main(void)
{
	UCSR0A = _BV(U2X0);
	UBRR0 = BAUD_UBRR;
	UCSR0B = _BV(RXEN0) | _BV(TXEN0);
	UCSR0C = _BV(UCSZ01) | _BV(UCSZ00);
	TCCR1A = 0;
	TCCR1B = _BV(WGM12) | _BV(CS11) | _BV(CS10);  /* CTC, clk/64 */
	OCR1A = 249;                                   /* 1 kHz */
	TIMSK1 = _BV(OCIE1A);
	sei();

	send_hello();
	uint32_t next = now_ms() + READ_EVERY_MS;
	uint8_t n = 0;
	for (;;) {
		poll_rx();
		if ((int32_t)(now_ms() - next) >= 0) {
			next += READ_EVERY_MS;
			send_reading(n++);
		}
	}
}
