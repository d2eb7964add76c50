// agentlock run: the lock names CMD's pid, not ours, so that CMD keeps its lock when we are
// killed. CMD is forked first and waits on a pipe until its lock is written; it never runs
// without the lock, and it never runs at all when we give up or die before writing it.

#include "cli.hpp"

#include <agentlock/duration.hpp>
#include <agentlock/fd.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <iostream>
#include <sys/wait.h>
#include <unistd.h>

namespace agentlock::cli {

namespace {

volatile std::sig_atomic_t g_child = 0;
volatile std::sig_atomic_t g_signal = 0;

constexpr int k_forwarded[] = {SIGTERM, SIGINT, SIGHUP};

// How often a --wait retries.
constexpr std::chrono::milliseconds k_retry_interval{200};

// Forwards a signal that a process sent (kill(1), systemd, a supervisor) to CMD. A signal the
// kernel sent to the whole foreground process group (Ctrl-C, a terminal hang-up) has already
// reached CMD, which is in that group too, so it is not sent twice.
void forward_signal(int sig, siginfo_t* info, void*) {
    g_signal = sig;
    if (g_child > 0 && info != nullptr && info->si_code <= 0) {
        const int saved = errno;
        (void)::kill(static_cast<pid_t>(g_child), sig); // async-signal-safe; CMD may be gone
        errno = saved;
    }
}

Status install_forwarding() {
    struct sigaction sa {};
    sa.sa_sigaction = forward_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    if (::sigemptyset(&sa.sa_mask) != 0) {
        return io_error("sigemptyset", "", errno);
    }
    for (int sig : k_forwarded) {
        if (::sigaction(sig, &sa, nullptr) != 0) {
            return io_error("sigaction", ::strsignal(sig), errno);
        }
    }
    return {};
}

// In the child: waits for the go byte, then becomes CMD. Never returns.
[[noreturn]] void child_main(int go_fd, const sigset_t& old_mask,
                             const std::vector<std::string>& command) {
    (void)::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
    char go = 0;
    ssize_t n = 0;
    do {
        n = ::read(go_fd, &go, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1) {
        ::_exit(k_exit_locked); // no lock for us: CMD must not run
    }
    std::vector<char*> argv;
    for (const auto& a : command) {
        argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    const int saved = errno;
    const std::string message =
        "agentlock: run " + shown(command[0]) + ": " + std::strerror(saved) + "\n";
    (void)!::write(STDERR_FILENO, message.data(), message.size());
    ::_exit(saved == ENOENT ? k_exit_not_found : k_exit_cannot_execute);
}

// Reaps the child, retrying on EINTR; returns its wait status.
int reap(pid_t child) {
    int status = 0;
    while (::waitpid(child, &status, 0) < 0) {
        if (errno != EINTR) {
            return 0;
        }
    }
    return status;
}

int exit_status_of(int status) {
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    if (WIFSIGNALED(status)) {
        return 128 + WTERMSIG(status);
    }
    return k_exit_software;
}

// Gives up before CMD started: closing the pipe makes the child exit without running CMD.
int give_up(Fd& go, pid_t child, int code) {
    go.reset();
    (void)reap(child);
    g_child = 0;
    return code;
}

void sleep_for(std::chrono::milliseconds d) {
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(d.count() / 1000);
    ts.tv_nsec = static_cast<long>((d.count() % 1000) * 1000000);
    (void)::nanosleep(&ts, nullptr); // a signal ends it early, which is what we want
}

} // namespace

int run_main(const Args& args) {
    if (args.operands.size() != 1 || args.command.empty()) {
        return fail(k_exit_usage, "run needs WORKER -- CMD [ARG...] (try agentlock run --help)");
    }
    const std::string worker = args.operands[0];
    if (args.has("--wait") && args.has("--no-wait")) {
        return fail(k_exit_usage, "give --wait DUR or --no-wait, not both");
    }
    std::chrono::milliseconds wait{0};
    if (auto text = args.value("--wait")) {
        auto d = parse_duration(*text);
        if (!d) {
            return fail(k_exit_usage, "--wait: " + d.error().message);
        }
        wait = *d;
    }
    std::string session;
    if (auto s = args.value("--session")) {
        session = *s;
    } else if (const char* pane = std::getenv("TMUX_PANE"); pane != nullptr) {
        session = pane;
    }
    if (Status s = check_worker_dir(worker); !s) {
        return fail(s.error().kind == ErrorKind::invalid ? k_exit_no_worker : k_exit_io,
                    s.error().message);
    }
    auto server = tmux_server_of_args(args, worker);
    if (!server) {
        return fail(k_exit_config, server.error().message);
    }

    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
        return fail(k_exit_io, io_error("pipe", "", errno).message);
    }
    Fd go_read(pipe_fds[0]);
    Fd go(pipe_fds[1]);
    // Blocked across fork so that no forwarded signal is handled before both sides are ready.
    sigset_t forwarded;
    sigset_t old_mask;
    (void)::sigemptyset(&forwarded);
    for (int sig : k_forwarded) {
        (void)::sigaddset(&forwarded, sig);
    }
    if (::sigprocmask(SIG_BLOCK, &forwarded, &old_mask) != 0) {
        return fail(k_exit_io, io_error("sigprocmask", "", errno).message);
    }
    std::cout.flush();
    std::cerr.flush();
    const pid_t child = ::fork();
    if (child < 0) {
        const int saved = errno;
        (void)::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
        return fail(k_exit_io, io_error("fork", "", saved).message);
    }
    if (child == 0) {
        // The parent's end must be closed here, or the read below would never see its EOF.
        go.reset();
        child_main(go_read.get(), old_mask, args.command);
    }
    go_read.reset();
    g_child = child;
    const Status forwarding = install_forwarding();
    (void)::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
    if (!forwarding) {
        return give_up(go, child, fail(k_exit_io, forwarding.error().message));
    }

    LockOptions options;
    options.tmux = *server;
    options.owner_pid = child;
    Lock lock(worker, options);
    const auto deadline = std::chrono::steady_clock::now() + wait;
    for (;;) {
        if (g_signal != 0) {
            return give_up(go, child, 128 + g_signal);
        }
        Status taken = lock.acquire(session);
        if (taken) {
            break;
        }
        const Error& e = taken.error();
        if (e.kind != ErrorKind::locked) {
            return give_up(go, child, fail(exit_code_of(e), e.message));
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            auto holder = lock.read();
            std::string message = "worker " + worker + " is locked by ";
            message += holder ? describe_holder(*holder) : std::string("another agent");
            if (const auto verdict = e.message.find(" ["); verdict != std::string::npos) {
                message += " " + e.message.substr(verdict + 1);
            }
            if (wait.count() > 0) {
                message += "; gave up after " + format_duration(wait);
            }
            return give_up(go, child, fail(k_exit_locked, message));
        }
        sleep_for(k_retry_interval);
    }

    // The lock names CMD's pid now: let it run.
    const char byte = 'g';
    ssize_t written = 0;
    do {
        written = ::write(go.get(), &byte, 1);
    } while (written < 0 && errno == EINTR);
    const int write_errno = errno;
    go.reset();
    if (written != 1) {
        (void)reap(child);
        (void)lock.release();
        return fail(k_exit_io, io_error("start command", args.command[0], write_errno).message);
    }

    // Wait for CMD to end without reaping it: while it is a zombie its pid cannot be reused,
    // so the lock released below is certainly CMD's.
    siginfo_t info{};
    while (::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT) != 0) {
        if (errno != EINTR) {
            const int saved = errno;
            return fail(k_exit_io, io_error("waitid", std::to_string(child), saved).message);
        }
    }
    const Status released = lock.release();
    const int status = reap(child);
    g_child = 0;
    if (!released) {
        // Someone else's lock now (or an unreadable one): theirs to keep.
        (void)fail(exit_code_of(released.error()),
                   "did not release " + lock.lock_path() + ": " + released.error().message);
    }
    return exit_status_of(status);
}

} // namespace agentlock::cli
