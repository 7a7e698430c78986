/*
 * The pod sandbox's pause process for the e2e guest's locally built sandbox image. It is
 * compiled statically on the host (gcc -static), so the image needs no libc: a single file.
 *
 * As PID 1 of the sandbox it must not exit on its own, must reap children re-parented to it
 * (zombies would otherwise pile up in a shared PID namespace), and must stop on SIGTERM or
 * SIGINT, which the kernel does not deliver to a PID 1 without a handler.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) {
  (void)sig;
  _exit(0);
}

static void on_child(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "-v") == 0) {
    puts("pause (ctrvol e2e)");
    return 0;
  }
  struct sigaction stop = {.sa_handler = on_stop};
  struct sigaction child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP | SA_RESTART};
  if (sigaction(SIGTERM, &stop, NULL) < 0 || sigaction(SIGINT, &stop, NULL) < 0 ||
      sigaction(SIGCHLD, &child, NULL) < 0) {
    perror("pause: sigaction");
    return 1;
  }
  for (;;) {
    pause();
  }
}
