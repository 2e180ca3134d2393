/* The pod sandbox's process, as the kubelet's pause image has it: holds the pod's namespaces,
 * reaps the zombies of a shared PID namespace, exits 0 on SIGINT/SIGTERM. Built static by
 * tests/cri/run.sh into a one-file image (no registry is reached). */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_term(int sig) {
	(void)sig;
	_exit(0);
}

static void on_chld(int sig) {
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

int main(int argc, char **argv) {
	struct sigaction sa;

	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		printf("pause (rrun tests/cri)\n");
		return 0;
	}
	if (getpid() != 1)
		fprintf(stderr, "pause: not running as pid 1\n");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_chld;
	sa.sa_flags = SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);
	for (;;)
		pause();
}
