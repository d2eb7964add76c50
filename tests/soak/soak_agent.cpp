// soak_agent: one agent of the churn soak. It links the library and loops forever: pick a random
// worker, Lock::acquire(session), hold it for a random time (sometimes re-acquiring it, which
// refreshes the lock), check that the lock is still its own, release. It tells the driver what
// it believes, through datagrams on the driver's report socket, one line each:
//
//   HELLO <pid> <session-tag>                       started (session-tag: the tmux session or -)
//   HOLD <worker> <pid> <acquired_at> <t_ns>        acquire returned ok at t_ns (after the call)
//   REFRESH <worker> <pid> <acquired_at> <t_ns>     re-acquired while holding: new acquired_at
//   RELEASE <worker> <pid> <acquired_at> <t_ns>     about to call release (t_ns before the call)
//   RELEASED <worker> <pid> <t_ns>                  release returned ok
//   LOST <worker> <pid> <acquired_at> <t_ns> <why>  the lock it holds vanished or changed
//   BUSY <worker> <pid>                             acquire said: locked by another agent
//   ERROR <pid> <what>                              anything else that went wrong
//
// Times are system_clock nanoseconds, comparable with the driver's and the daemon's log times.
// The driver kills agents with SIGKILL at any moment; an agent never exits on its own.
//
// With --prime it is instead a gastown agent's `gt prime`: a short-lived process that takes the
// lock of the agent's own worker for the agent's tmux pane (--session %N, from $TMUX_PANE), says
//
//   PRIME <worker> <pid> <acquired_at> <t_ns>       the lock is written (t_ns after the write)
//
// and exits a few seconds later without releasing it: from then on the lock lives by its pane.
// With --go-lock it writes the lock as gastown's Go code does (pid, acquired_at, session_id,
// hostname, under the sidecar flock); otherwise through agentlock::Lock, which also records the
// tmux server named by $TMUX.

#include <agentlock/fd.hpp>
#include <agentlock/lock.hpp>
#include <agentlock/lock_file.hpp>
#include <agentlock/process_probe.hpp>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <string>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

namespace {

struct Options {
    std::string root;
    std::string report;
    std::string session;     // recorded session_id; empty for none
    std::string session_tag; // which tmux session we run in, for the driver; "-" for none
    std::string tmux_socket;
    unsigned workers = 16;
    unsigned hold_min_ms = 50;
    unsigned hold_max_ms = 1000;
    unsigned long seed = 0;
    // --prime: one lock for one worker, then a few seconds of life.
    bool prime = false;
    std::string worker;
    bool go_lock = false;
    unsigned live_min_ms = 500;
    unsigned live_max_ms = 3000;
};

int g_report_fd = -1;

long long now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// One datagram per line; a full queue blocks us, which is fine (the driver drains it).
void report(const std::string& line) {
    for (;;) {
        if (::send(g_report_fd, line.data(), line.size(), 0) >= 0) {
            return;
        }
        if (errno != EINTR) {
            std::fprintf(stderr, "soak_agent: send: %s\n", std::strerror(errno));
            std::_Exit(3);
        }
    }
}

// Spaces and newlines would break the line format; error texts may contain spaces.
std::string one_word(std::string s) {
    for (char& c : s) {
        if (c == ' ' || c == '\n' || c == '\t') {
            c = '_';
        }
    }
    return s.empty() ? "-" : s;
}

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "soak_agent: %s\nusage: soak_agent --root DIR --report SOCKET [--session ID | "
                 "--session-from-tmux name|id|pane] [--tmux-socket NAME] [--workers N] "
                 "[--hold-ms MIN MAX] [--seed N]\n"
                 "       soak_agent --prime --root DIR --worker NAME --report SOCKET --session %%N "
                 "[--go-lock] [--live-ms MIN MAX] [--seed N]\n",
                 why);
    std::exit(2);
}

// The session id to record when we run inside tmux: the session name (passed in), the "$N" id
// (third field of $TMUX) or the "%N" pane id ($TMUX_PANE).
std::string session_from_tmux(const std::string& mode, const std::string& name) {
    if (mode == "name") {
        return name;
    }
    if (mode == "pane") {
        const char* pane = std::getenv("TMUX_PANE");
        return pane != nullptr ? pane : "";
    }
    const char* tmux = std::getenv("TMUX");
    if (tmux == nullptr) {
        return "";
    }
    std::string t = tmux;
    const auto comma = t.rfind(',');
    return comma == std::string::npos ? "" : "$" + t.substr(comma + 1);
}

Options parse(int argc, char** argv) {
    Options o;
    std::string from_tmux;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                usage(("missing value for " + a).c_str());
            }
            return argv[++i];
        };
        if (a == "--root") {
            o.root = next();
        } else if (a == "--report") {
            o.report = next();
        } else if (a == "--session") {
            o.session = next();
        } else if (a == "--session-from-tmux") {
            from_tmux = next();
        } else if (a == "--session-tag") {
            o.session_tag = next();
        } else if (a == "--tmux-socket") {
            o.tmux_socket = next();
        } else if (a == "--workers") {
            o.workers = static_cast<unsigned>(std::stoul(next()));
        } else if (a == "--hold-ms") {
            o.hold_min_ms = static_cast<unsigned>(std::stoul(next()));
            o.hold_max_ms = static_cast<unsigned>(std::stoul(next()));
        } else if (a == "--seed") {
            o.seed = std::stoul(next());
        } else if (a == "--prime") {
            o.prime = true;
        } else if (a == "--worker") {
            o.worker = next();
        } else if (a == "--go-lock") {
            o.go_lock = true;
        } else if (a == "--live-ms") {
            o.live_min_ms = static_cast<unsigned>(std::stoul(next()));
            o.live_max_ms = static_cast<unsigned>(std::stoul(next()));
        } else {
            usage(("unknown argument " + a).c_str());
        }
    }
    if (o.root.empty() || o.report.empty() || o.workers == 0 || o.hold_max_ms < o.hold_min_ms ||
        (o.prime && (o.worker.empty() || o.session.empty() || o.live_max_ms < o.live_min_ms))) {
        usage("bad arguments");
    }
    if (!from_tmux.empty()) {
        o.session = session_from_tmux(from_tmux, o.session_tag);
        if (o.session.empty()) {
            usage("--session-from-tmux outside tmux");
        }
    }
    if (o.session_tag.empty()) {
        o.session_tag = "-";
    }
    return o;
}

std::string worker_name(unsigned i) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "w%03u", i);
    return buf;
}

// The lock as gastown's Go code writes it: no start ticks, no boot id, no tmux server; written
// atomically under the sidecar flock. An empty string when it is written, else why not.
std::string write_go_lock(const std::string& worker, const std::string& session,
                          agentlock::Timestamp& acquired) {
    const std::string runtime = worker + "/.runtime";
    if (::mkdir(runtime.c_str(), 0755) != 0 && errno != EEXIST) {
        return "mkdir " + runtime + ": " + std::strerror(errno);
    }
    const agentlock::Fd rt(::open(runtime.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!rt) {
        return "open " + runtime + ": " + std::strerror(errno);
    }
    const agentlock::Fd side(::openat(rt.get(), std::string(agentlock::k_flock_name).c_str(),
                                      O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!side || ::flock(side.get(), LOCK_EX) != 0) {
        return "flock " + runtime + ": " + std::strerror(errno);
    }
    agentlock::LockInfo info;
    info.pid = ::getpid();
    acquired =
        std::chrono::time_point_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now());
    info.acquired_at = acquired;
    info.session_id = session;
    info.hostname = agentlock::read_host_facts().hostname;
    const agentlock::Status st =
        agentlock::write_lock_at(rt.get(), agentlock::lock_path_for(worker), info);
    return st ? "" : st.error().message;
}

// `gt prime`: takes the worker's lock for the pane, says so, lives a little, exits holding it.
int run_prime(const Options& opt) {
    const std::string pid = std::to_string(::getpid());
    const std::string worker = opt.root + "/" + opt.worker;
    agentlock::Timestamp acquired{};
    std::string failed;
    if (opt.go_lock) {
        failed = write_go_lock(worker, opt.session, acquired);
    } else {
        agentlock::Lock lock(worker);
        const agentlock::Status st = lock.acquire(opt.session);
        auto mine = st ? lock.read() : agentlock::Result<agentlock::LockInfo>(st.error());
        if (!mine || mine->pid != ::getpid()) {
            failed = "acquire: " +
                     (mine ? "read back PID " + std::to_string(mine->pid) : mine.error().message);
        } else {
            acquired = mine->acquired_at;
        }
    }
    if (!failed.empty()) {
        report("ERROR " + pid + " prime_" + opt.worker + ":" + one_word(failed));
        return 1;
    }
    report("PRIME " + opt.worker + " " + pid + " " + agentlock::format_rfc3339(acquired) + " " +
           std::to_string(now_ns()));
    std::mt19937_64 rng(opt.seed ^ (static_cast<unsigned long>(::getpid()) << 20));
    std::this_thread::sleep_for(std::chrono::milliseconds(
        std::uniform_int_distribution<unsigned>(opt.live_min_ms, opt.live_max_ms)(rng)));
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    const Options opt = parse(argc, argv);
    g_report_fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (g_report_fd < 0 || opt.report.size() >= sizeof addr.sun_path) {
        usage("cannot make the report socket");
    }
    std::memcpy(addr.sun_path, opt.report.c_str(), opt.report.size() + 1);
    if (::connect(g_report_fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        std::fprintf(stderr, "soak_agent: connect %s: %s\n", opt.report.c_str(),
                     std::strerror(errno));
        return 3;
    }
    if (opt.prime) {
        return run_prime(opt);
    }
    const std::string pid = std::to_string(::getpid());
    report("HELLO " + pid + " " + opt.session_tag);

    std::mt19937_64 rng(opt.seed ^ (static_cast<unsigned long>(::getpid()) << 20));
    auto uniform = [&](unsigned lo, unsigned hi) {
        return std::uniform_int_distribution<unsigned>(lo, hi)(rng);
    };
    agentlock::LockOptions lock_options;
    lock_options.tmux.socket_name = opt.tmux_socket;

    for (;;) {
        const std::string w = worker_name(uniform(0, opt.workers - 1));
        agentlock::Lock lock(opt.root + "/" + w, lock_options);
        const agentlock::Status st = lock.acquire(opt.session);
        if (!st) {
            if (st.error().kind == agentlock::ErrorKind::locked) {
                report("BUSY " + w + " " + pid);
            } else {
                report("ERROR " + pid + " acquire_" + w + ":" + one_word(st.error().message));
            }
            // Back off: an acquire that meets a lock recording a session asks tmux.
            std::this_thread::sleep_for(std::chrono::milliseconds(uniform(50, 250)));
            continue;
        }
        // What we wrote: read back under our claim (nobody may change it while we hold it).
        auto mine = lock.read();
        if (!mine || mine->pid != ::getpid()) {
            report("LOST " + w + " " + pid + " - " + std::to_string(now_ns()) + " " +
                   one_word(mine ? "read-back-shows-PID-" + std::to_string(mine->pid)
                                 : "read-back-failed:" + mine.error().message));
            continue;
        }
        std::string acquired = agentlock::format_rfc3339(mine->acquired_at);
        report("HOLD " + w + " " + pid + " " + acquired + " " + std::to_string(now_ns()));

        const unsigned hold = uniform(opt.hold_min_ms, opt.hold_max_ms);
        const bool refresh = uniform(0, 4) == 0;
        bool lost = false;
        if (refresh) {
            std::this_thread::sleep_for(std::chrono::milliseconds(hold / 2));
            const agentlock::Status again = lock.acquire(opt.session);
            auto now_mine = lock.read();
            if (!again || !now_mine || now_mine->pid != ::getpid()) {
                report("LOST " + w + " " + pid + " " + acquired + " " + std::to_string(now_ns()) +
                       " " +
                       one_word("refresh-failed:" +
                                (again ? std::string("read-back") : again.error().message)));
                lost = true;
            } else {
                acquired = agentlock::format_rfc3339(now_mine->acquired_at);
                report("REFRESH " + w + " " + pid + " " + acquired + " " +
                       std::to_string(now_ns()));
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(hold - hold / 2));
        } else {
            std::this_thread::sleep_for(std::chrono::milliseconds(hold));
        }
        if (lost) {
            continue;
        }
        // Still ours, unchanged? Anything else means someone removed or took a live lock.
        auto still = lock.read();
        if (!still || still->pid != ::getpid() ||
            agentlock::format_rfc3339(still->acquired_at) != acquired) {
            report("LOST " + w + " " + pid + " " + acquired + " " + std::to_string(now_ns()) + " " +
                   one_word(still ? "now-PID-" + std::to_string(still->pid) + "-acquired-" +
                                        agentlock::format_rfc3339(still->acquired_at)
                                  : "gone:" + still.error().message));
            continue;
        }
        report("RELEASE " + w + " " + pid + " " + acquired + " " + std::to_string(now_ns()));
        const agentlock::Status rel = lock.release();
        if (!rel) {
            report("ERROR " + pid + " release_" + w + ":" + one_word(rel.error().message));
        } else {
            report("RELEASED " + w + " " + pid + " " + std::to_string(now_ns()));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(uniform(0, 30)));
    }
}
