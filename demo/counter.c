/*
 * The demo program: counts up from 1, appending one number per line to a file every 100 ms.
 * It starts its own session so that it can be dumped as a tree of its own.
 */
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct timespec tick = { 0, 100 * 1000 * 1000 };
	unsigned long n = 0;
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: %s FILE\n", argv[0]);
		return 2;
	}
	fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	setsid();
	for (;;) {
		dprintf(fd, "%lu\n", ++n);
		while (nanosleep(&tick, &tick))
			;
		tick.tv_nsec = 100 * 1000 * 1000;
	}
}
