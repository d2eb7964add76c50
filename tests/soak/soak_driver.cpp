// soak_driver: the churn soak, which shows that no live lock is ever removed under churn. It runs
// the real agentlockd (short interval, JSON logs at debug level) over a worker root while N real
// agent processes (soak_agent, linking the library) acquire, hold, refresh and release random
// workers, and while the driver SIGKILLs agents at random. Some agents run inside tmux sessions on
// a private -L socket; the driver creates those sessions, kills agents inside them (the session
// lives on: the lock is then held by the session) and kills the sessions. It checks, continuously:
//
//   (a) no lock is ever removed while its owner lives or its recorded session exists: every
//       lock.removed line of the daemon (which carries the removed content) is matched with the
//       driver's ground truth, the time the driver started killing the owner (or its session);
//       and every agent checks, before releasing, that its lock is still its own (LOST);
//   (b) every stale lock is gone within two intervals: the driver polls every stale lock's file
//       and fails when two whole passes of the daemon that started after the lock became stale
//       (owner dead, and its session, if real, killed) completed while the file was still there;
//       it also measures the wall-clock time from stale to gone and reports the maximum;
//   (c) no two live agents ever both believe they hold the same worker: a HOLD on a worker must
//       come after the previous holder's RELEASE, or after the driver started killing it.
//
// With --gastown-servers, gastown-style agents run beside them: private tmux servers (each on its
// own -S socket, serving its own town root), panes created and ended at random (kill-pane, or the
// pane's process exiting, with remain-on-exit on in some), and each server restarted now and then
// (kill-server, then a new server on the same socket: its ids start at %0 and $0 again). Each pane
// gets a worker of its own, whose lock a short-lived `gt prime` (soak_agent --prime) takes for the
// pane's %N and leaves behind when it exits seconds later: the lock lives by its pane. (a) holds
// for them too (a removed lock's pane, or its server, must have been ending, and its PID dead), and
// so does (b) once the pane or its server is gone and the prime has exited.
//
// At the end it stops the churn, kills every agent and session, waits until every stale lock is
// gone, checks that the root holds no lock, stops the daemon with SIGTERM (exit 0 expected) and
// prints the counts. Exit status: 0 when every invariant held, 1 otherwise, 2 on usage errors.

#include "test_support.hpp"

#include <agentlock/lock_file.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <poll.h>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using Clock = std::chrono::system_clock;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------
// Options

struct Options {
    unsigned agents = 100;      // concurrent plain agents (children of the driver)
    unsigned tmux_sessions = 0; // concurrent tmux sessions, one agent at a time in each
    unsigned workers = 0;       // 0: as many as agents
    double duration_s = 60;
    unsigned interval_ms = 200;
    double kills_per_s = 5;
    unsigned hold_min_ms = 50;
    unsigned hold_max_ms = 1500;
    unsigned long seed = 0;
    std::string agentlockd;
    std::string agent;
    std::string dir;                    // keep everything here instead of a temp dir
    std::optional<double> max_stale_ms; // optional wall-clock bound on stale lifetimes
    std::string summary_json;           // write the counts here too
    // Self-checks: make the invariants fail on purpose, to show the soak can see it.
    std::vector<std::string> daemon_args; // extra agentlockd arguments (e.g. --dry-run)
    double rogue_unlinks_per_s = 0;       // the driver itself unlinks random locks
    std::string expect_violations;        // e.g. "ab": succeed only if these were seen
    // gastown-style agents: private tmux servers, each serving a town root of its own
    unsigned gastown_servers = 0;
    unsigned gastown_panes = 0;   // concurrent agent panes over them (0: three per server)
    double gastown_restart_s = 6; // mean time between restarts of each server
    unsigned gastown_pane_min_ms = 2000;
    unsigned gastown_pane_max_ms = 8000;
    unsigned gastown_prime_min_ms = 300; // how long gt prime lives after writing the lock
    unsigned gastown_prime_max_ms = 2500;
};

[[noreturn]] void usage(const std::string& why) {
    std::fprintf(stderr,
                 "soak_driver: %s\n"
                 "usage: soak_driver [--agents N] [--tmux-sessions K] [--workers M]\n"
                 "                   [--duration SECONDS] [--interval-ms MS] [--kills-per-s R]\n"
                 "                   [--hold-ms MIN MAX] [--seed N] [--agentlockd PATH]\n"
                 "                   [--agent PATH] [--dir DIR] [--max-stale-ms MS]\n"
                 "                   [--summary-json FILE]\n"
                 "gastown agents:    [--gastown-servers S] [--gastown-panes P]\n"
                 "                   [--gastown-restart-s SECONDS] [--gastown-pane-ms MIN MAX]\n"
                 "                   [--gastown-prime-ms MIN MAX]\n"
                 "self-checks:       [--daemon-arg ARG]... [--rogue-unlinks-per-s R]\n"
                 "                   [--expect-violations LETTERS]\n"
                 "AGENTLOCKD and SOAK_AGENT are read when the flags are absent.\n",
                 why.c_str());
    std::exit(2);
}

Options parse_options(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                usage("missing value for " + a);
            }
            return argv[++i];
        };
        try {
            if (a == "--agents") {
                o.agents = static_cast<unsigned>(std::stoul(next()));
            } else if (a == "--tmux-sessions") {
                o.tmux_sessions = static_cast<unsigned>(std::stoul(next()));
            } else if (a == "--workers") {
                o.workers = static_cast<unsigned>(std::stoul(next()));
            } else if (a == "--duration") {
                o.duration_s = std::stod(next());
            } else if (a == "--interval-ms") {
                o.interval_ms = static_cast<unsigned>(std::stoul(next()));
            } else if (a == "--kills-per-s") {
                o.kills_per_s = std::stod(next());
            } else if (a == "--hold-ms") {
                o.hold_min_ms = static_cast<unsigned>(std::stoul(next()));
                o.hold_max_ms = static_cast<unsigned>(std::stoul(next()));
            } else if (a == "--seed") {
                o.seed = std::stoul(next());
            } else if (a == "--agentlockd") {
                o.agentlockd = next();
            } else if (a == "--agent") {
                o.agent = next();
            } else if (a == "--dir") {
                o.dir = next();
            } else if (a == "--max-stale-ms") {
                o.max_stale_ms = std::stod(next());
            } else if (a == "--summary-json") {
                o.summary_json = next();
            } else if (a == "--daemon-arg") {
                o.daemon_args.push_back(next());
            } else if (a == "--rogue-unlinks-per-s") {
                o.rogue_unlinks_per_s = std::stod(next());
            } else if (a == "--expect-violations") {
                o.expect_violations = next();
            } else if (a == "--gastown-servers") {
                o.gastown_servers = static_cast<unsigned>(std::stoul(next()));
            } else if (a == "--gastown-panes") {
                o.gastown_panes = static_cast<unsigned>(std::stoul(next()));
            } else if (a == "--gastown-restart-s") {
                o.gastown_restart_s = std::stod(next());
            } else if (a == "--gastown-pane-ms") {
                o.gastown_pane_min_ms = static_cast<unsigned>(std::stoul(next()));
                o.gastown_pane_max_ms = static_cast<unsigned>(std::stoul(next()));
            } else if (a == "--gastown-prime-ms") {
                o.gastown_prime_min_ms = static_cast<unsigned>(std::stoul(next()));
                o.gastown_prime_max_ms = static_cast<unsigned>(std::stoul(next()));
            } else if (a == "--help") {
                usage("help");
            } else {
                usage("unknown argument " + a);
            }
        } catch (const std::logic_error&) {
            usage("bad value for " + a);
        }
    }
    if (o.workers == 0) {
        o.workers = std::max(4u, o.agents + o.tmux_sessions);
    }
    if (o.agentlockd.empty()) {
        const char* env = std::getenv("AGENTLOCKD");
        o.agentlockd = env != nullptr ? env : "";
    }
    if (o.agent.empty()) {
        const char* env = std::getenv("SOAK_AGENT");
        if (env != nullptr) {
            o.agent = env;
        } else {
            std::error_code ec;
            o.agent =
                (fs::read_symlink("/proc/self/exe", ec).parent_path() / "soak_agent").string();
        }
    }
    if (o.agentlockd.empty()) {
        usage("no agentlockd: pass --agentlockd or set AGENTLOCKD");
    }
    if (o.seed == 0) {
        o.seed = static_cast<unsigned long>(Clock::now().time_since_epoch().count());
    }
    if (o.gastown_servers > 0 && o.gastown_panes == 0) {
        o.gastown_panes = 3 * o.gastown_servers;
    }
    if (o.agents + o.tmux_sessions == 0 || o.hold_max_ms < o.hold_min_ms || o.interval_ms == 0 ||
        o.gastown_pane_max_ms < o.gastown_pane_min_ms ||
        o.gastown_prime_max_ms < o.gastown_prime_min_ms || o.gastown_restart_s <= 0) {
        usage("bad arguments");
    }
    return o;
}

// ---------------------------------------------------------------------------------------------
// Small helpers

// pidfds through syscall(2): Debian 12's <sys/pidfd.h> lacks extern "C".
int open_pidfd(pid_t pid) {
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

int pidfd_kill(int pidfd) {
    return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0));
}

long long now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
        .count();
}

std::string ms_text(long long ns) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", static_cast<double>(ns) / 1e6);
    return buf;
}

std::vector<std::string> split_words(const std::string& line) {
    std::vector<std::string> out;
    std::istringstream in(line);
    std::string w;
    while (in >> w) {
        out.push_back(w);
    }
    return out;
}

std::optional<long long> rfc3339_ns(const std::string& text) {
    auto t = agentlock::parse_rfc3339(text);
    if (!t) {
        return std::nullopt;
    }
    return t->time_since_epoch().count();
}

// Runs argv (no shell) and returns its exit status and stdout.
struct Ran {
    int status = -1;
    std::string out;
};

Ran run_program(const std::vector<std::string>& argv) {
    int pipefd[2];
    Ran r;
    if (::pipe2(pipefd, O_CLOEXEC) != 0) {
        return r;
    }
    std::vector<char*> args;
    std::vector<std::string> copy = argv;
    for (auto& a : copy) {
        args.push_back(a.data());
    }
    args.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
        ::close(pipefd[0]);
        ::close(pipefd[1]);
        return r;
    }
    if (pid == 0) {
        ::dup2(pipefd[1], STDOUT_FILENO);
        const int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (devnull >= 0) {
            ::dup2(devnull, STDERR_FILENO);
        }
        ::execvp(args[0], args.data());
        ::_exit(127);
    }
    ::close(pipefd[1]);
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(pipefd[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        r.out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(pipefd[0]);
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

// Forks and execs argv with stdout and stderr appended to `log_path`, and `env` ("NAME=VALUE")
// replacing or adding to our environment; returns the PID.
pid_t spawn(const std::vector<std::string>& argv, const std::string& log_path,
            const std::string& out_path = "", const std::vector<std::string>& env = {}) {
    std::vector<std::string> copy = argv;
    std::vector<char*> args;
    for (auto& a : copy) {
        args.push_back(a.data());
    }
    args.push_back(nullptr);
    std::vector<std::string> env_copy = env;
    std::vector<char*> envp;
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string_view entry(*e);
        const bool replaced = std::any_of(env.begin(), env.end(), [&](const std::string& mine) {
            const std::size_t eq = mine.find('=');
            return entry.substr(0, eq + 1) == std::string_view(mine).substr(0, eq + 1);
        });
        if (!replaced) {
            envp.push_back(*e);
        }
    }
    for (auto& e : env_copy) {
        envp.push_back(e.data());
    }
    envp.push_back(nullptr);
    const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    const int out_fd = out_path.empty() ? -1
                                        : ::open(out_path.c_str(),
                                                 O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    const pid_t pid = ::fork();
    if (pid == 0) {
        if (null_fd >= 0) {
            ::dup2(null_fd, STDIN_FILENO);
        }
        if (log_fd >= 0) {
            ::dup2(out_fd >= 0 ? out_fd : log_fd, STDOUT_FILENO);
            ::dup2(log_fd, STDERR_FILENO);
        }
        ::execve(args[0], args.data(), envp.data());
        ::_exit(127);
    }
    for (int fd : {log_fd, out_fd, null_fd}) {
        if (fd >= 0) {
            ::close(fd);
        }
    }
    if (pid < 0) {
        std::fprintf(stderr, "soak_driver: fork: %s\n", std::strerror(errno));
        std::exit(1);
    }
    return pid;
}

// ---------------------------------------------------------------------------------------------
// Ground truth

struct Agent {
    pid_t pid = -1;
    int pidfd = -1;
    bool child = false;            // a plain agent, our child
    std::string session;           // tmux session it runs in ("" for plain agents)
    std::string recorded;          // the session_id it records ("" for none)
    bool recorded_is_real = false; // recorded names a tmux session of ours (name, $id or %pane)
    std::optional<long long> death_begin;     // the driver started killing it (or its session)
    std::optional<long long> death_confirmed; // the driver saw it dead
    std::optional<int> current_hold;          // index into holds
};

struct Session {
    std::string name;
    std::string id;   // $N
    std::string pane; // %N
    std::string mode; // what its agents record: name, id or pane
    long long created = 0;
    std::optional<long long> kill_begin;
    std::optional<long long> kill_done;
    std::vector<std::size_t> agents; // agents that ran in it
    long long next_action = 0;
    bool killed_agent = false;
};

struct Hold {
    std::string worker;
    std::size_t agent = 0; // index into the driver's agents
    pid_t pid = -1;
    std::string acquired; // current acquired_at (refresh changes it)
    std::vector<std::string> all_acquired;
    long long t1 = 0;             // HOLD reported (after acquire returned)
    std::optional<long long> end; // RELEASE (before release), LOST, or death_begin
    bool release_sent = false;
    bool released = false; // RELEASED: the unlink is done
    bool lost = false;
};

// A holder's belief ends at the earliest of: RELEASE (before the unlink), LOST, its death. Each
// bound is no later than the true end, so overlaps found are real.
void end_belief(Hold& h, long long t) {
    h.end = h.end ? std::min(*h.end, t) : t;
}

struct StaleLock {
    std::string worker;
    std::string dir; // the worker's directory, when not under the plain root (a town's)
    pid_t pid = -1;
    std::string acquired;
    std::string recorded; // session_id recorded
    bool real_session = false;
    bool release_sent = false; // its owner was killed between RELEASE and the unlink
    long long stale_at = 0;
    long long last_seen_present = 0;
    std::optional<long long> gone_at; // when the driver saw it gone (late by its polling)
    bool never_stale = false;         // gone before it became stale (unlinked by its owner)
    bool late_reported = false;       // a (b) violation was reported for it
};

struct Pass {
    long long start_est = 0; // ts - elapsed_ms
    long long completed = 0; // ts (+1 ms: the log's ms are truncated)
    bool tmux_ok = false;
    bool cancelled = false;
};

struct Removal {
    long long ts = 0;
    std::string worker;
    std::string lock_path;
    pid_t pid = -1;
    std::string acquired;
    std::string session;
    std::string pid_state;
};

// A private tmux server of gastown agents, serving one town root.
struct Town {
    std::string socket; // -S path
    std::string root;
    unsigned generation = 0; // servers started on the socket so far
    pid_t pid = -1;          // the current server
    int pidfd = -1;
    long long next_restart = 0;
    bool restart_due = false;         // no new panes until it has been restarted
    std::optional<long long> killing; // kill-server sent, waiting for the server to exit
    std::vector<std::size_t> panes;   // panes of the current server
};

// One gastown agent: its pane (in a session of its own), its worker, its `gt prime` and its lock.
struct Pane {
    std::size_t town = 0;
    unsigned generation = 0;
    std::string id;      // %N
    std::string session; // its session's name
    std::string worker;  // g00042: its own, never reused
    int pane_pidfd = -1; // the pane's process
    bool remain = false; // remain-on-exit: its process's exit leaves it dead, not gone
    long long created = 0;
    long long end_at = 0; // when the driver ends it
    pid_t prime = -1;
    int prime_pidfd = -1;
    bool go_lock = false;
    std::optional<long long> prime_exited;
    std::optional<std::string> acquired; // the lock it wrote (PRIME)
    std::optional<long long> end_begin;  // the driver started ending it (or its server)
    std::optional<long long> end_done;   // gone, or dead, for sure (or its server exited)
    std::string end_kind;                // kill-pane, process-exit, server-restart, end
    long long next_confirm = 0;          // process-exit: when to ask tmux again
    bool stale_added = false;
};

class Soak {
public:
    explicit Soak(Options o) : m_opt(std::move(o)), m_rng(m_opt.seed) {}
    int run();

private:
    // setup and teardown
    void setup();
    void start_daemon();
    void start_report_socket();
    void receive_loop();
    std::string tmux_socket_path() const;
    // agents and sessions
    void spawn_plain_agent();
    void start_session();
    void kill_session(Session& s);
    void kill_agent(Agent& a, bool via_session_kill, long long when);
    void churn(long long now, double dt_s);
    void poll_deaths();
    void on_death(Agent& a, long long when);
    // messages
    void drain_messages();
    void on_message(const std::string& line, long long received);
    void on_hold(const std::vector<std::string>& w);
    // daemon log
    void ingest_log();
    void on_event(const json::object& e);
    void on_removed(const json::object& e, long long ts);
    // invariants
    void check_stale_locks(long long now);
    void stale_candidate(const Hold& h, const Agent& a, long long when);
    void maybe_add_stale_for(Agent& a);
    // gastown agents
    std::vector<std::string> town_tmux(const Town& t) const;
    void start_town_server(Town& t);
    void create_pane(std::size_t town);
    void end_pane(Pane& p, long long now);
    void confirm_pane_end(Pane& p, long long now);
    bool restart_allowed(const Town& t, long long now) const;
    void begin_restart(Town& t, const std::string& kind);
    bool server_exited(Town& t, long long when);
    void gastown_churn(long long now);
    void poll_primes();
    void pane_ended(Pane& p, long long when);
    void maybe_gastown_stale(Pane& p);
    bool in_a_town(const std::string& path) const;
    void on_gastown_removed(const Removal& r, const std::string& reason, const std::string& what);
    void finish_gastown();
    void violation(char which, const std::string& text);
    void error(const std::string& text);
    // end
    void finish();
    long long lifetime_of(const StaleLock& s, std::string& how) const;
    void summary();
    std::string worker_path(const std::string& w) const { return m_root + "/" + w; }

    Options m_opt;
    std::mt19937_64 m_rng;
    std::string m_dir;
    bool m_own_dir = false;
    std::string m_root;
    std::string m_tmux_name;
    std::string m_report_path;
    int m_report_fd = -1;
    std::thread m_receiver;
    std::atomic<bool> m_stop_receiver{false};
    std::mutex m_queue_mutex;
    std::deque<std::pair<long long, std::string>> m_queue;

    pid_t m_daemon = -1;
    std::string m_daemon_log;
    std::size_t m_log_offset = 0;
    std::string m_log_partial;

    // Every agent ever started; m_by_pid maps a PID to its latest agent (PIDs are reused: the
    // machine's pid_max may be small, and tmux, sh and sleep take PIDs too).
    std::deque<Agent> m_agents;
    std::map<pid_t, std::size_t> m_by_pid;
    Agent* agent_by_pid(pid_t pid) {
        auto it = m_by_pid.find(pid);
        return it == m_by_pid.end() ? nullptr : &m_agents[it->second];
    }
    std::size_t add_agent(const Agent& a) {
        m_agents.push_back(a);
        m_by_pid[a.pid] = m_agents.size() - 1;
        return m_agents.size() - 1;
    }
    std::map<std::string, Session> m_sessions;
    std::map<std::string, std::string> m_session_of_id; // name, $id, %pane -> session name
    std::vector<Hold> m_holds;
    std::map<std::string, int> m_worker_hold; // worker -> index of the last HOLD on it
    std::vector<StaleLock> m_stale;
    std::vector<Pass> m_passes;
    std::vector<Removal> m_removals;
    std::vector<Town> m_towns;
    std::deque<Pane> m_panes;
    std::map<std::string, std::size_t> m_pane_of_worker;
    unsigned m_pane_counter = 0;
    unsigned m_session_counter = 0;
    unsigned m_ghost_counter = 0;
    double m_kill_budget = 0;
    double m_rogue_budget = 0;
    bool m_stopping = false; // the end: agents and primes are killed on purpose

    // counts
    std::map<std::string, long long> m_count;
    std::vector<std::string> m_violations[3];
    std::vector<std::string> m_errors;
};

// ---------------------------------------------------------------------------------------------
// Setup

void Soak::setup() {
    if (m_opt.dir.empty()) {
        std::string tmpl = (std::getenv("TMPDIR") != nullptr ? std::string(std::getenv("TMPDIR"))
                                                             : std::string("/tmp")) +
                           "/agentlock-soak-XXXXXX";
        if (::mkdtemp(tmpl.data()) == nullptr) {
            std::fprintf(stderr, "soak_driver: mkdtemp: %s\n", std::strerror(errno));
            std::exit(1);
        }
        m_dir = tmpl;
        m_own_dir = true;
    } else {
        m_dir = m_opt.dir;
        fs::create_directories(m_dir);
    }
    m_root = m_dir + "/root";
    fs::create_directories(m_root);
    for (unsigned i = 0; i < m_opt.workers; ++i) {
        char name[16];
        std::snprintf(name, sizeof name, "w%03u", i);
        fs::create_directories(m_root + "/" + name);
    }
    m_tmux_name = "agentlock-soak-" + std::to_string(::getpid());
    // The anchor session keeps the server up all along, so tmux always answers "ok".
    Ran r = run_program({"tmux", "-L", m_tmux_name, "-f", "/dev/null", "new-session", "-d", "-s",
                         "soak-anchor", "sleep", "1000000"});
    if (r.status != 0) {
        std::fprintf(stderr, "soak_driver: cannot start a tmux server\n");
        std::exit(1);
    }
    for (unsigned i = 0; i < m_opt.gastown_servers; ++i) {
        Town t;
        t.socket = m_dir + "/gt-" + std::to_string(i) + ".sock";
        t.root = m_dir + "/town-" + std::to_string(i);
        fs::create_directories(t.root);
        m_towns.push_back(t);
        start_town_server(m_towns.back());
    }
    start_report_socket();
    start_daemon();
}

std::string Soak::tmux_socket_path() const {
    const char* dir = std::getenv("TMUX_TMPDIR");
    return std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/tmux-" +
           std::to_string(::getuid()) + "/" + m_tmux_name;
}

void Soak::start_report_socket() {
    m_report_path = m_dir + "/report.sock";
    m_report_fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (m_report_fd < 0 || m_report_path.size() >= sizeof addr.sun_path) {
        std::fprintf(stderr, "soak_driver: report socket\n");
        std::exit(1);
    }
    std::memcpy(addr.sun_path, m_report_path.c_str(), m_report_path.size() + 1);
    if (::bind(m_report_fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        std::fprintf(stderr, "soak_driver: bind %s: %s\n", m_report_path.c_str(),
                     std::strerror(errno));
        std::exit(1);
    }
    const int size = 8 << 20;
    (void)::setsockopt(m_report_fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size); // best effort
    m_receiver = std::thread([this] { receive_loop(); });
}

void Soak::receive_loop() {
    char buf[4096];
    while (!m_stop_receiver) {
        pollfd p{m_report_fd, POLLIN, 0};
        const int n = ::poll(&p, 1, 100);
        if (n <= 0) {
            continue;
        }
        const ssize_t got = ::recv(m_report_fd, buf, sizeof buf, 0);
        if (got <= 0) {
            continue;
        }
        const long long t = now_ns();
        std::lock_guard<std::mutex> lock(m_queue_mutex);
        m_queue.emplace_back(t, std::string(buf, static_cast<std::size_t>(got)));
    }
}

void Soak::start_daemon() {
    m_daemon_log = m_dir + "/agentlockd.log";
    std::vector<std::string> argv{m_opt.agentlockd,
                                  "--root",
                                  m_root,
                                  "--tmux-socket",
                                  m_tmux_name,
                                  "--interval",
                                  std::to_string(m_opt.interval_ms) + "ms",
                                  "--log-format",
                                  "json",
                                  "--log-level",
                                  "debug"};
    if (!m_towns.empty()) {
        // Each town is a root with its own server, which only a config file can say. The panes
        // exist before their locks, so no launcher slack is needed: a server restarted later than
        // a lock holds nothing of it, even when its new panes reuse the lock's %N.
        json::array roots;
        roots.push_back(json::object{{"path", m_root}, {"tmux_socket", m_tmux_name}});
        for (const auto& t : m_towns) {
            roots.push_back(json::object{{"path", t.root}, {"tmux_socket_path", t.socket}});
        }
        const std::string config = m_dir + "/agentlockd.json";
        std::ofstream(config) << json::serialize(
            json::object{{"roots", std::move(roots)}, {"tmux_created_slack", "0s"}});
        argv = {m_opt.agentlockd,
                "--config",
                config,
                "--interval",
                std::to_string(m_opt.interval_ms) + "ms",
                "--log-format",
                "json",
                "--log-level",
                "debug"};
    }
    argv.insert(argv.end(), m_opt.daemon_args.begin(), m_opt.daemon_args.end());
    m_daemon = spawn(argv, m_daemon_log, m_dir + "/agentlockd.out");
}

// ---------------------------------------------------------------------------------------------
// Agents and sessions

void Soak::spawn_plain_agent() {
    std::string recorded;
    if (std::uniform_int_distribution<int>(0, 9)(m_rng) < 3) {
        recorded = "ghost-" + std::to_string(++m_ghost_counter); // never a tmux session
    }
    std::vector<std::string> argv{m_opt.agent,
                                  "--root",
                                  m_root,
                                  "--report",
                                  m_report_path,
                                  "--workers",
                                  std::to_string(m_opt.workers),
                                  "--hold-ms",
                                  std::to_string(m_opt.hold_min_ms),
                                  std::to_string(m_opt.hold_max_ms),
                                  "--tmux-socket",
                                  m_tmux_name,
                                  "--seed",
                                  std::to_string(m_rng())};
    if (!recorded.empty()) {
        argv.insert(argv.end(), {"--session", recorded});
    }
    const pid_t pid = spawn(argv, m_dir + "/agents.log");
    Agent a;
    a.pid = pid;
    a.child = true;
    a.recorded = recorded;
    a.pidfd = open_pidfd(pid);
    if (a.pidfd < 0) {
        error("pidfd_open " + std::to_string(pid) + ": " + std::strerror(errno));
    }
    add_agent(a);
    ++m_count["agents_spawned_plain"];
}

void Soak::start_session() {
    Session s;
    s.name = "soak-" + std::to_string(++m_session_counter);
    static const char* const k_modes[] = {"name", "id", "pane"};
    s.mode = k_modes[m_session_counter % 3];
    const std::string agent_cmd =
        "'" + m_opt.agent + "' --root '" + m_root + "' --report '" + m_report_path +
        "' --workers " + std::to_string(m_opt.workers) + " --hold-ms " +
        std::to_string(m_opt.hold_min_ms) + " " + std::to_string(m_opt.hold_max_ms) +
        " --tmux-socket '" + m_tmux_name + "' --session-from-tmux " + s.mode + " --session-tag " +
        s.name + " --seed " + std::to_string(m_rng() % 1000000000);
    // Two agents one after the other, then the session idles: a dead agent's lock is held by
    // the session until the driver kills the session.
    const std::string script = agent_cmd + "; sleep 0.3; " + agent_cmd + "; exec sleep 1000000";
    Ran r = run_program({"tmux", "-L", m_tmux_name, "-f", "/dev/null", "new-session", "-d", "-s",
                         s.name, "-P", "-F", "#{session_id} #{pane_id}", "sh", "-c", script});
    auto words = split_words(r.out);
    if (r.status != 0 || words.size() != 2) {
        error("tmux new-session " + s.name + " failed: " + r.out);
        return;
    }
    s.id = words[0];
    s.pane = words[1];
    s.created = now_ns();
    s.next_action =
        s.created + std::uniform_int_distribution<long long>(1'000'000'000, 6'000'000'000)(m_rng);
    m_session_of_id[s.name] = s.name;
    m_session_of_id[s.id] = s.name;
    m_session_of_id[s.pane] = s.name;
    m_sessions[s.name] = s;
    ++m_count["sessions_created"];
}

void Soak::kill_agent(Agent& a, bool via_session_kill, long long when) {
    if (a.death_begin || a.death_confirmed) {
        return;
    }
    a.death_begin = when;
    if (a.current_hold) {
        Hold& h = m_holds[static_cast<std::size_t>(*a.current_hold)];
        end_belief(h, std::max(when, h.t1));
    }
    if (via_session_kill) {
        return;
    }
    if (a.pidfd >= 0 && pidfd_kill(a.pidfd) != 0 && errno != ESRCH) {
        error("pidfd kill " + std::to_string(a.pid) + ": " + std::strerror(errno));
    }
    ++m_count[a.child ? "kills_plain" : "kills_tmux_agent"];
}

void Soak::kill_session(Session& s) {
    const long long begin = now_ns();
    s.kill_begin = begin;
    for (std::size_t i : s.agents) {
        kill_agent(m_agents[i], true, begin);
    }
    Ran r = run_program(
        {"tmux", "-L", m_tmux_name, "-f", "/dev/null", "kill-session", "-t", "=" + s.name});
    s.kill_done = now_ns();
    if (r.status != 0) {
        error("tmux kill-session " + s.name + " failed");
    }
    ++m_count["sessions_killed"];
    // Its dead agents' locks become stale now.
    for (std::size_t i : s.agents) {
        if (m_agents[i].death_confirmed) {
            maybe_add_stale_for(m_agents[i]);
        }
    }
}

void Soak::churn(long long now, double dt_s) {
    // Plain agents: SIGKILL at the configured rate, respawn at once.
    m_kill_budget += m_opt.kills_per_s * dt_s;
    while (m_kill_budget >= 1.0) {
        m_kill_budget -= 1.0;
        std::vector<std::size_t> live;
        for (std::size_t i = 0; i < m_agents.size(); ++i) {
            if (m_agents[i].child && !m_agents[i].death_begin) {
                live.push_back(i);
            }
        }
        if (live.empty()) {
            break;
        }
        Agent& victim =
            m_agents[live[std::uniform_int_distribution<std::size_t>(0, live.size() - 1)(m_rng)]];
        kill_agent(victim, false, now_ns());
        // Reap at once: the PID is dead for sure from here on.
        int st = 0;
        while (::waitpid(victim.pid, &st, 0) < 0 && errno == EINTR) {
        }
        on_death(victim, now_ns());
        spawn_plain_agent();
    }
    // Self-check: a rogue cleaner that removes locks whoever holds them.
    m_rogue_budget += m_opt.rogue_unlinks_per_s * dt_s;
    while (m_rogue_budget >= 1.0) {
        m_rogue_budget -= 1.0;
        char name[16];
        std::snprintf(name, sizeof name, "w%03u",
                      std::uniform_int_distribution<unsigned>(0, m_opt.workers - 1)(m_rng));
        if (::unlink((worker_path(name) + "/.runtime/agent.lock").c_str()) == 0) {
            ++m_count["rogue_unlinks"];
        }
    }
    // tmux sessions: kill the agent inside (the session lives on), or kill the session.
    std::vector<std::string> to_kill;
    for (auto& [name, s] : m_sessions) {
        if (s.kill_begin || now < s.next_action) {
            continue;
        }
        Agent* inside = nullptr;
        for (std::size_t i : s.agents) {
            if (!m_agents[i].death_begin) {
                inside = &m_agents[i];
            }
        }
        const bool kill_inside =
            inside != nullptr && std::uniform_int_distribution<int>(0, 1)(m_rng) == 0;
        if (kill_inside) {
            kill_agent(*inside, false, now_ns());
            s.killed_agent = true;
            s.next_action =
                now + std::uniform_int_distribution<long long>(500'000'000, 3'000'000'000)(m_rng);
        } else {
            to_kill.push_back(name);
        }
    }
    for (const auto& name : to_kill) {
        kill_session(m_sessions[name]);
        start_session();
    }
}

void Soak::poll_deaths() {
    std::vector<pollfd> fds;
    std::vector<std::size_t> which;
    for (std::size_t i = 0; i < m_agents.size(); ++i) {
        if (!m_agents[i].death_confirmed && m_agents[i].pidfd >= 0) {
            fds.push_back(pollfd{m_agents[i].pidfd, POLLIN, 0});
            which.push_back(i);
        }
    }
    if (fds.empty() || ::poll(fds.data(), fds.size(), 0) <= 0) {
        return;
    }
    const long long when = now_ns();
    for (std::size_t i = 0; i < fds.size(); ++i) {
        if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
            continue;
        }
        Agent& a = m_agents[which[i]];
        if (a.child) {
            int st = 0;
            while (::waitpid(a.pid, &st, WNOHANG) < 0 && errno == EINTR) {
            }
            if (!a.death_begin) {
                error("plain agent " + std::to_string(a.pid) + " died on its own: " +
                      (WIFEXITED(st) ? "exit " + std::to_string(WEXITSTATUS(st))
                                     : "signal " + std::to_string(WTERMSIG(st))) +
                      " (see agents.log)");
                a.death_begin = when;
            }
        } else if (!a.death_begin) {
            error("tmux agent " + std::to_string(a.pid) + " in " + a.session + " died on its own");
            a.death_begin = when;
        }
        on_death(a, when);
    }
}

void Soak::on_death(Agent& a, long long when) {
    if (a.death_confirmed) {
        return;
    }
    a.death_confirmed = when;
    if (a.pidfd >= 0) {
        ::close(a.pidfd);
        a.pidfd = -1;
    }
    maybe_add_stale_for(a);
}

// A dead agent's lock is stale once its recorded session, if a real one, is gone too.
void Soak::maybe_add_stale_for(Agent& a) {
    if (!a.current_hold || !a.death_confirmed) {
        return;
    }
    Hold& h = m_holds[static_cast<std::size_t>(*a.current_hold)];
    if (h.released || h.lost) {
        return;
    }
    long long when = *a.death_confirmed;
    if (a.recorded_is_real) {
        const Session& s = m_sessions[m_session_of_id[a.recorded]];
        if (!s.kill_done) {
            return; // held by the session: kept until the session goes
        }
        when = std::max(when, *s.kill_done);
    }
    for (const auto& st : m_stale) {
        if (st.pid == h.pid && st.acquired == h.acquired) {
            return;
        }
    }
    stale_candidate(h, a, when);
}

void Soak::stale_candidate(const Hold& h, const Agent& a, long long when) {
    StaleLock s;
    s.worker = h.worker;
    s.pid = h.pid;
    s.acquired = h.acquired;
    s.recorded = a.recorded;
    s.real_session = a.recorded_is_real;
    s.release_sent = h.release_sent;
    s.stale_at = when;
    s.last_seen_present = when;
    m_stale.push_back(s);
    ++m_count["stale_locks"];
}

// ---------------------------------------------------------------------------------------------
// gastown agents

std::vector<std::string> Soak::town_tmux(const Town& t) const {
    return {"tmux", "-S", t.socket, "-f", "/dev/null"};
}

namespace {

std::vector<std::string> with(std::vector<std::string> argv,
                              std::initializer_list<std::string> more) {
    argv.insert(argv.end(), more);
    return argv;
}

// Whether a pidfd says its process has exited.
bool exited(int pidfd) {
    pollfd p{pidfd, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
}

// How a lock.removed reason says its pane no longer held it.
std::string removal_kind(const std::string& reason) {
    if (reason.find("tmux server was created at") != std::string::npos) {
        return "reused_id"; // a newer server's pane with the same %N
    }
    if (reason.find("the lock's tmux server") != std::string::npos) {
        return "recorded_server_gone";
    }
    if (reason.find("no tmux server running") != std::string::npos) {
        return "no_server";
    }
    if (reason.find("is dead (its process exited") != std::string::npos) {
        return "dead_pane";
    }
    if (reason.find(" is gone") != std::string::npos) {
        return "pane_gone";
    }
    return "other";
}

} // namespace

// A server on the town's socket, kept up by an anchor session (a town's long-lived session), so
// that it ends only when the driver restarts it.
void Soak::start_town_server(Town& t) {
    Ran r = run_program(with(town_tmux(t), {"new-session", "-d", "-s", "gt-anchor", "-P", "-F",
                                            "#{pid}", "exec sleep 1000000"}));
    const auto words = split_words(r.out);
    if (r.status != 0 || words.size() != 1) {
        error("tmux -S " + t.socket + " new-session gt-anchor failed: " + r.out);
        return;
    }
    t.pid = static_cast<pid_t>(std::stol(words[0]));
    t.pidfd = open_pidfd(t.pid);
    if (t.pidfd < 0) {
        error("pidfd_open tmux server " + words[0] + ": " + std::strerror(errno));
    }
    ++t.generation;
    t.panes.clear();
    t.restart_due = false;
    t.killing.reset();
    const double mean_ns = m_opt.gastown_restart_s * 1e9;
    t.next_restart = now_ns() + static_cast<long long>(std::uniform_real_distribution<double>(
                                    0.5 * mean_ns, 1.5 * mean_ns)(m_rng));
    ++m_count["gastown_servers_started"];
}

void Soak::create_pane(std::size_t town) {
    Town& t = m_towns[town];
    Pane p;
    p.town = town;
    p.generation = t.generation;
    p.session = "gt-" + std::to_string(++m_pane_counter);
    char worker[16];
    std::snprintf(worker, sizeof worker, "g%05u", m_pane_counter);
    p.worker = worker;
    fs::create_directories(t.root + "/" + p.worker);
    Ran r = run_program(
        with(town_tmux(t), {"new-session", "-d", "-s", p.session, "-P", "-F",
                            "#{pane_id} #{pane_pid} #{session_id} #{pid}", "exec sleep 1000000"}));
    const auto words = split_words(r.out);
    if (r.status != 0 || words.size() != 4 || words[3] != std::to_string(t.pid)) {
        error("tmux -S " + t.socket + " new-session " + p.session + ": " + r.out);
        return;
    }
    p.id = words[0];
    p.pane_pidfd = open_pidfd(static_cast<pid_t>(std::stol(words[1])));
    p.remain = std::uniform_int_distribution<int>(0, 2)(m_rng) == 0;
    if (p.remain) {
        run_program(
            with(town_tmux(t), {"set-option", "-w", "-t", p.session, "remain-on-exit", "on"}));
    }
    p.created = now_ns();
    p.end_at =
        p.created + 1'000'000LL * std::uniform_int_distribution<long long>(
                                      m_opt.gastown_pane_min_ms, m_opt.gastown_pane_max_ms)(m_rng);
    // gt prime: run for the pane (its $TMUX_PANE, and $TMUX naming the server, as inside it),
    // a child of ours so that its PID is known before it writes anything.
    p.go_lock = std::uniform_int_distribution<int>(0, 2)(m_rng) != 0; // gastown's are Go's
    std::vector<std::string> argv{m_opt.agent,
                                  "--prime",
                                  "--root",
                                  t.root,
                                  "--worker",
                                  p.worker,
                                  "--report",
                                  m_report_path,
                                  "--session",
                                  p.id,
                                  "--live-ms",
                                  std::to_string(m_opt.gastown_prime_min_ms),
                                  std::to_string(m_opt.gastown_prime_max_ms),
                                  "--seed",
                                  std::to_string(m_rng() % 1000000000)};
    if (p.go_lock) {
        argv.push_back("--go-lock");
    }
    p.prime = spawn(argv, m_dir + "/agents.log", "",
                    {"TMUX_PANE=" + p.id,
                     "TMUX=" + t.socket + "," + std::to_string(t.pid) + "," + words[2].substr(1)});
    p.prime_pidfd = open_pidfd(p.prime);
    if (p.prime_pidfd < 0) {
        error("pidfd_open prime " + std::to_string(p.prime) + ": " + std::strerror(errno));
    }
    m_panes.push_back(p);
    m_pane_of_worker[p.worker] = m_panes.size() - 1;
    t.panes.push_back(m_panes.size() - 1);
    ++m_count["gastown_panes"];
    ++m_count[p.go_lock ? "gastown_go_locks" : "gastown_our_locks"];
}

// A pane ends: killed (gone at once), or its process killed (closed by tmux, or left dead with
// remain-on-exit, once tmux has noticed: confirm_pane_end asks it).
void Soak::end_pane(Pane& p, long long now) {
    const Town& t = m_towns[p.town];
    p.end_begin = now;
    if (std::uniform_int_distribution<int>(0, 1)(m_rng) == 0) {
        p.end_kind = "kill-pane";
        Ran r = run_program(with(town_tmux(t), {"kill-pane", "-t", p.id}));
        if (r.status != 0) {
            error("tmux -S " + t.socket + " kill-pane " + p.id + " failed");
        }
        pane_ended(p, now_ns());
    } else {
        p.end_kind = "process-exit";
        if (p.pane_pidfd >= 0 && pidfd_kill(p.pane_pidfd) != 0 && errno != ESRCH) {
            error("pidfd kill of pane " + p.id + ": " + std::strerror(errno));
        }
        p.next_confirm = now + 20'000'000;
    }
    ++m_count["gastown_end_" + p.end_kind];
}

void Soak::confirm_pane_end(Pane& p, long long now) {
    const Town& t = m_towns[p.town];
    Ran r = run_program(with(town_tmux(t), {"display-message", "-p", "-t", p.id, "#{pane_dead}"}));
    if (r.status != 0 || split_words(r.out) == std::vector<std::string>{"1"}) {
        pane_ended(p, now_ns()); // gone (its window, and its session, closed) or dead
        return;
    }
    p.next_confirm = now + 50'000'000;
}

// A server is restarted only once every lock taken in its panes is more than a second older
// than now: tmux's start_time is whole seconds, truncated, so the new server's reads later than
// every such lock, and a pane of it that reuses a lock's %N is told apart by the rule.
bool Soak::restart_allowed(const Town& t, long long now) const {
    for (std::size_t i : t.panes) {
        const Pane& p = m_panes[i];
        if (now - p.created < 1'200'000'000) {
            return false;
        }
        if (!p.acquired && !p.prime_exited) {
            return false; // its lock may be written any moment
        }
        if (p.acquired && now - rfc3339_ns(*p.acquired).value_or(now) < 1'200'000'000) {
            return false;
        }
    }
    return true;
}

void Soak::begin_restart(Town& t, const std::string& kind) {
    const long long now = now_ns();
    for (std::size_t i : t.panes) {
        Pane& p = m_panes[i];
        if (!p.end_begin) {
            p.end_begin = now;
            p.end_kind = kind;
        }
    }
    t.killing = now;
    Ran r = run_program(with(town_tmux(t), {"kill-server"}));
    if (r.status != 0) {
        error("tmux -S " + t.socket + " kill-server failed");
    }
}

// Once the killed server has exited, its panes are gone, and so is every pane id it handed out.
bool Soak::server_exited(Town& t, long long when) {
    if (t.pidfd >= 0 && !exited(t.pidfd)) {
        if (when - *t.killing > 10'000'000'000LL) {
            error("tmux server " + std::to_string(t.pid) + " did not exit after kill-server");
            t.killing = when;
        }
        return false;
    }
    if (t.pidfd >= 0) {
        ::close(t.pidfd);
        t.pidfd = -1;
    }
    for (std::size_t i : t.panes) {
        Pane& p = m_panes[i];
        if (!p.end_done) {
            pane_ended(p, when);
        }
    }
    t.panes.clear();
    return true;
}

void Soak::gastown_churn(long long now) {
    for (auto& t : m_towns) {
        if (t.killing) {
            if (server_exited(t, now_ns())) {
                start_town_server(t);
                ++m_count["gastown_server_restarts"];
            }
            continue;
        }
        if (!t.restart_due && now >= t.next_restart) {
            t.restart_due = true;
        }
        if (t.restart_due && restart_allowed(t, now)) {
            begin_restart(t, "server-restart");
            continue;
        }
        for (std::size_t i : t.panes) {
            Pane& p = m_panes[i];
            if (!p.end_begin && now >= p.end_at) {
                end_pane(p, now);
            } else if (p.end_begin && !p.end_done && now >= p.next_confirm) {
                confirm_pane_end(p, now);
            }
        }
    }
    // Keep the panes coming, on servers that are not about to restart.
    std::size_t live = 0;
    for (const auto& t : m_towns) {
        for (std::size_t i : t.panes) {
            live += m_panes[i].end_begin ? 0U : 1U;
        }
    }
    for (std::size_t tries = 0; live < m_opt.gastown_panes && tries < m_towns.size(); ++tries) {
        const std::size_t town = (m_pane_counter + tries) % m_towns.size();
        if (!m_towns[town].restart_due && !m_towns[town].killing && m_towns[town].pidfd >= 0) {
            create_pane(town);
            ++live;
            tries = 0;
        }
    }
}

void Soak::poll_primes() {
    const long long when = now_ns();
    for (auto& p : m_panes) {
        if (p.prime_pidfd < 0 || !exited(p.prime_pidfd)) {
            continue;
        }
        int st = 0;
        while (::waitpid(p.prime, &st, 0) < 0 && errno == EINTR) {
        }
        ::close(p.prime_pidfd);
        p.prime_pidfd = -1;
        p.prime_exited = when;
        if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0) && !(WIFSIGNALED(st) && m_stopping)) {
            error("gt prime " + std::to_string(p.prime) + " of " + p.worker + " ended with " +
                  (WIFEXITED(st) ? "exit " + std::to_string(WEXITSTATUS(st))
                                 : "signal " + std::to_string(WTERMSIG(st))) +
                  " (see agents.log)");
        }
        maybe_gastown_stale(p);
    }
}

void Soak::pane_ended(Pane& p, long long when) {
    p.end_done = when;
    if (p.pane_pidfd >= 0) {
        ::close(p.pane_pidfd);
        p.pane_pidfd = -1;
    }
    maybe_gastown_stale(p);
}

// A pane's lock is stale once its pane (or its server) is gone or dead and its gt prime exited.
void Soak::maybe_gastown_stale(Pane& p) {
    if (p.stale_added || !p.end_done || !p.prime_exited || !p.acquired) {
        return;
    }
    p.stale_added = true;
    StaleLock s;
    s.worker = p.worker;
    s.dir = m_towns[p.town].root + "/" + p.worker;
    s.pid = p.prime;
    s.acquired = *p.acquired;
    s.recorded = p.id;
    s.real_session = true;
    s.stale_at = std::max(*p.end_done, *p.prime_exited);
    s.last_seen_present = s.stale_at;
    m_stale.push_back(s);
    ++m_count["stale_locks"];
    ++m_count["gastown_stale_locks"];
}

bool Soak::in_a_town(const std::string& path) const {
    return std::any_of(m_towns.begin(), m_towns.end(), [&](const Town& t) {
        return path.compare(0, t.root.size() + 1, t.root + "/") == 0;
    });
}

// (a) for a gastown lock: its pane (or its server) was being ended before the removal, and its
// gt prime had exited (the daemon never removes a lock whose PID runs).
void Soak::on_gastown_removed(const Removal& r, const std::string& reason,
                              const std::string& what) {
    ++m_count["gastown_removals"];
    ++m_count["gastown_removals_" + removal_kind(reason)];
    const auto it = m_pane_of_worker.find(r.worker);
    if (it == m_pane_of_worker.end()) {
        violation('a', "a lock in a town the driver knows nothing about: " + what);
        return;
    }
    const Pane& p = m_panes[it->second];
    if (r.pid != p.prime || (p.acquired && *p.acquired != r.acquired)) {
        violation('a', "a lock " + p.worker + "'s gt prime did not write: " + what);
        return;
    }
    const long long removal_bound = r.ts + 1'000'000;
    if (!p.end_begin || *p.end_begin > removal_bound) {
        violation('a',
                  "pane " + p.id + " of " + m_towns[p.town].socket + " (server " +
                      std::to_string(p.generation) + ") alive: " + what +
                      (p.end_begin ? ", ended only at " + ms_text(*p.end_begin) : ", never ended"));
    }
    if (p.prime_pidfd >= 0 && !exited(p.prime_pidfd)) {
        violation('a', "its gt prime " + std::to_string(p.prime) + " still runs: " + what);
    }
}

void Soak::finish_gastown() {
    for (auto& t : m_towns) {
        if (!t.killing) {
            begin_restart(t, "end");
        }
    }
    for (auto& p : m_panes) {
        if (p.prime_pidfd >= 0) {
            (void)pidfd_kill(p.prime_pidfd);
        }
    }
    const long long deadline = now_ns() + 20'000'000'000LL;
    for (bool all = false; !all && now_ns() < deadline; std::this_thread::sleep_for(10ms)) {
        drain_messages();
        poll_primes();
        all = true;
        for (auto& t : m_towns) {
            if (t.killing && server_exited(t, now_ns())) {
                t.killing.reset();
            }
            all = all && !t.killing;
        }
        for (const auto& p : m_panes) {
            all = all && p.prime_pidfd < 0;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Agent messages

void Soak::drain_messages() {
    std::deque<std::pair<long long, std::string>> batch;
    {
        std::lock_guard<std::mutex> lock(m_queue_mutex);
        batch.swap(m_queue);
    }
    for (const auto& [t, line] : batch) {
        on_message(line, t);
    }
}

void Soak::on_message(const std::string& line, long long received) {
    (void)received;
    const auto w = split_words(line);
    if (w.empty()) {
        return;
    }
    const std::string& kind = w[0];
    auto agent_of = [&](const std::string& pid_text) -> Agent* {
        return agent_by_pid(static_cast<pid_t>(std::stol(pid_text)));
    };
    if (kind == "HELLO" && w.size() == 3) {
        const auto pid = static_cast<pid_t>(std::stol(w[1]));
        if (w[2] == "-") {
            return; // a plain agent, registered at spawn
        }
        Agent a;
        a.pid = pid;
        a.session = w[2];
        Session& s = m_sessions[a.session];
        a.recorded = s.mode == "name" ? s.name : s.mode == "id" ? s.id : s.pane;
        a.recorded_is_real = true;
        a.pidfd = open_pidfd(pid);
        if (s.kill_begin) {
            a.death_begin = *s.kill_begin;
        }
        if (a.pidfd < 0) {
            // Already gone (its session was killed, or it was killed before saying hello).
            if (!a.death_begin) {
                error("tmux agent " + std::to_string(pid) + " gone before registration");
                a.death_begin = now_ns();
            }
            a.death_confirmed = now_ns();
        }
        s.agents.push_back(add_agent(a));
        ++m_count["agents_spawned_tmux"];
        return;
    }
    if (kind == "HOLD" && w.size() == 5) {
        on_hold(w);
        return;
    }
    if ((kind == "REFRESH" || kind == "RELEASE") && w.size() == 5) {
        Agent* a = agent_of(w[2]);
        if (a == nullptr || !a->current_hold) {
            error("unexpected " + line);
            return;
        }
        Hold& h = m_holds[static_cast<std::size_t>(*a->current_hold)];
        if (kind == "REFRESH") {
            h.acquired = w[3];
            h.all_acquired.push_back(w[3]);
            ++m_count["refreshes"];
        } else {
            h.release_sent = true;
            end_belief(h, std::stoll(w[4]));
        }
        return;
    }
    if (kind == "RELEASED" && w.size() == 4) {
        Agent* a = agent_of(w[2]);
        if (a == nullptr || !a->current_hold) {
            error("unexpected " + line);
            return;
        }
        m_holds[static_cast<std::size_t>(*a->current_hold)].released = true;
        a->current_hold.reset();
        ++m_count["releases"];
        return;
    }
    if (kind == "LOST" && w.size() >= 6) {
        Agent* a = agent_of(w[2]);
        violation('a', "agent " + w[2] + " lost its live lock on " + w[1] + " (acquired " + w[3] +
                           "): " + w[5]);
        if (a != nullptr && a->current_hold) {
            Hold& h = m_holds[static_cast<std::size_t>(*a->current_hold)];
            h.lost = true;
            end_belief(h, std::stoll(w[4]));
            a->current_hold.reset();
        }
        return;
    }
    if (kind == "PRIME" && w.size() == 5) {
        const auto it = m_pane_of_worker.find(w[1]);
        if (it == m_pane_of_worker.end() || m_panes[it->second].prime != std::stol(w[2])) {
            error("PRIME from an unknown prime: " + line);
            return;
        }
        Pane& p = m_panes[it->second];
        p.acquired = w[3];
        ++m_count["gastown_primes"];
        maybe_gastown_stale(p);
        return;
    }
    if (kind == "BUSY") {
        ++m_count["busy"];
        return;
    }
    if (kind == "ERROR") {
        error("agent: " + line);
        return;
    }
    error("unparsed agent message: " + line);
}

void Soak::on_hold(const std::vector<std::string>& w) {
    const std::string& worker = w[1];
    const auto pid = static_cast<pid_t>(std::stol(w[2]));
    const long long t1 = std::stoll(w[4]);
    Agent* found = agent_by_pid(pid);
    if (found == nullptr) {
        error("HOLD from unknown PID " + w[2]);
        return;
    }
    Agent& a = *found;
    ++m_count["acquisitions"];
    // (c): the previous holder of this worker must have stopped believing before t1.
    auto prev = m_worker_hold.find(worker);
    if (prev != m_worker_hold.end()) {
        Hold& p = m_holds[static_cast<std::size_t>(prev->second)];
        if (p.pid != pid) {
            if (!p.end) {
                violation('c', worker + ": agent " + w[2] + " holds it since " + ms_text(t1) +
                                   " ms while agent " + std::to_string(p.pid) +
                                   " still holds it (HOLD " + ms_text(p.t1) + ")");
            } else if (*p.end > t1) {
                violation('c', worker + ": agent " + w[2] + " holds it since " + ms_text(t1) +
                                   " ms, before agent " + std::to_string(p.pid) +
                                   " stopped holding it at " + ms_text(*p.end));
            }
            if (!p.release_sent && !p.lost) {
                ++m_count["takeovers"]; // its owner died holding it: the lock was stale
            }
        }
    }
    if (a.current_hold) {
        const Hold& mine = m_holds[static_cast<std::size_t>(*a.current_hold)];
        if (!mine.released && !mine.lost) {
            error("agent " + w[2] + " holds " + worker + " and still " + mine.worker);
        }
    }
    Hold h;
    h.worker = worker;
    h.agent = m_by_pid[pid];
    h.pid = pid;
    h.acquired = w[3];
    h.all_acquired.push_back(w[3]);
    h.t1 = t1;
    m_holds.push_back(h);
    const int index = static_cast<int>(m_holds.size() - 1);
    m_worker_hold[worker] = index;
    a.current_hold = index;
    // The driver may have started killing it already: its belief ends with its death, which
    // comes after both the kill began and t1.
    if (a.death_begin) {
        end_belief(m_holds.back(), std::max(*a.death_begin, t1));
    }
    if (a.death_confirmed) {
        maybe_add_stale_for(a);
    }
}

// ---------------------------------------------------------------------------------------------
// The daemon's log

void Soak::ingest_log() {
    const int fd = ::open(m_daemon_log.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    if (::lseek(fd, static_cast<off_t>(m_log_offset), SEEK_SET) < 0) {
        ::close(fd);
        return;
    }
    char buf[65536];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        m_log_offset += static_cast<std::size_t>(n);
        m_log_partial.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    std::size_t start = 0;
    for (;;) {
        const std::size_t end = m_log_partial.find('\n', start);
        if (end == std::string::npos) {
            break;
        }
        const std::string line = m_log_partial.substr(start, end - start);
        start = end + 1;
        boost::system::error_code ec;
        json::value v = json::parse(line, ec);
        if (ec || !v.is_object()) {
            error("daemon log line is not JSON: " + line);
            continue;
        }
        on_event(v.as_object());
    }
    m_log_partial.erase(0, start);
}

std::string str_of(const json::object& o, std::string_view key) {
    auto it = o.find(key);
    return (it != o.end() && it->value().is_string()) ? std::string(it->value().as_string()) : "";
}

std::optional<long long> int_of(const json::object& o, std::string_view key) {
    auto it = o.find(key);
    if (it == o.end()) {
        return std::nullopt;
    }
    if (it->value().is_int64()) {
        return it->value().as_int64();
    }
    if (it->value().is_uint64()) {
        return static_cast<long long>(it->value().as_uint64());
    }
    return std::nullopt;
}

void Soak::on_event(const json::object& e) {
    const std::string name = str_of(e, "event");
    const auto ts = rfc3339_ns(str_of(e, "ts"));
    if (!ts) {
        error("daemon log line without a ts: " + json::serialize(e));
        return;
    }
    ++m_count["log_" + name];
    if (name == "pass.completed") {
        Pass p;
        p.completed = *ts;
        p.start_est = *ts - int_of(e, "elapsed_ms").value_or(0) * 1'000'000;
        // "ok", or with several servers "3 ok" or "2 ok,1 no-server": every server answered.
        const std::string tmux = str_of(e, "tmux");
        p.tmux_ok = !tmux.empty() && tmux.find("unknown") == std::string::npos;
        p.cancelled = e.find("cancelled") != e.end();
        m_passes.push_back(p);
    } else if (name == "lock.removed") {
        on_removed(e, *ts);
    } else if (name == "pass.failed" || name == "lock.remove_failed" || name == "lock.invalid" ||
               name == "daemon.failed" || name == "root.unavailable" || name == "dir.unreadable") {
        error("daemon: " + json::serialize(e));
    }
}

void Soak::on_removed(const json::object& e, long long ts) {
    Removal r;
    r.ts = ts;
    r.lock_path = str_of(e, "lock_path");
    r.worker = fs::path(str_of(e, "worker")).filename().string();
    r.pid_state = str_of(e, "pid_state");
    auto info = agentlock::parse_lock(str_of(e, "content"));
    if (!info) {
        error("lock.removed whose content does not parse: " + json::serialize(e));
        return;
    }
    r.pid = static_cast<pid_t>(info->pid);
    r.acquired = agentlock::format_rfc3339(info->acquired_at);
    r.session = info->session_id;
    m_removals.push_back(r);
    ++m_count["removals"];
    ++m_count["removals_pid_" + r.pid_state];
    if (in_a_town(r.lock_path)) {
        ++m_count["gastown_trigger_" + str_of(e, "trigger")];
        on_gastown_removed(r, str_of(e, "reason"),
                           r.lock_path + " (PID " + std::to_string(r.pid) + ", acquired " +
                               r.acquired + ", session '" + r.session + "') removed at " +
                               ms_text(ts) + " ms: " + str_of(e, "reason"));
        return;
    }

    // Which hold wrote it? (PID and acquired_at are unique together.)
    const Hold* hold = nullptr;
    for (auto it = m_holds.rbegin(); it != m_holds.rend(); ++it) {
        if (it->pid == r.pid && it->worker == r.worker &&
            std::find(it->all_acquired.begin(), it->all_acquired.end(), r.acquired) !=
                it->all_acquired.end()) {
            hold = &*it;
            break;
        }
    }
    const std::string what = r.lock_path + " (PID " + std::to_string(r.pid) + ", acquired " +
                             r.acquired + ", session '" + r.session + "') removed at " +
                             ms_text(ts) + " ms";
    const Agent* owner_ptr = nullptr;
    if (hold != nullptr) {
        owner_ptr = &m_agents[hold->agent];
    } else {
        // A lock whose HOLD report died with its agent (killed between writing and reporting)
        // is still ours: its PID must be one of our agents'. The latest agent with that PID
        // that was not yet being killed when the lock was acquired wrote it.
        const auto acquired_ns = rfc3339_ns(r.acquired).value_or(0);
        for (auto it = m_agents.rbegin(); it != m_agents.rend(); ++it) {
            if (it->pid == r.pid && (!it->death_begin || *it->death_begin >= acquired_ns)) {
                owner_ptr = &*it;
                break;
            }
        }
        if (owner_ptr == nullptr) {
            // An agent started inside one of our tmux sessions reports its PID itself; when the
            // session is killed before that report arrives, the driver never learns the PID.
            // Such a removal is accounted for only when the lock records one of our sessions,
            // that session was being killed before the removal, and the PID is not alive now.
            const long long bound = ts + 1'000'000;
            auto sid = r.session.empty() ? m_session_of_id.end() : m_session_of_id.find(r.session);
            const bool session_killed = sid != m_session_of_id.end() &&
                                        m_sessions[sid->second].kill_begin &&
                                        *m_sessions[sid->second].kill_begin <= bound;
            bool pid_gone =
                r.pid > 0 && ::kill(static_cast<pid_t>(r.pid), 0) != 0 && errno == ESRCH;
            if (!pid_gone && r.pid > 0) {
                // An orphaned zombie (this container's PID 1 does not reap) is gone too.
                const char state = agentlock::test::process_state(static_cast<pid_t>(r.pid));
                pid_gone = state == 'Z' || state == 'X';
            }
            if (!session_killed || !pid_gone) {
                violation('a', "a lock the driver knows nothing about: " + what);
                return;
            }
            ++m_count["removals_unreported_tmux_agent"];
            return;
        }
        ++m_count["removals_unreported_hold"];
    }
    // (a): the owner must have been dead, or at least being killed, at the removal. The log's
    // milliseconds are truncated: the unlink happened before ts + 1 ms.
    const long long removal_bound = ts + 1'000'000;
    const Agent& owner = *owner_ptr;
    if (!owner.death_begin || *owner.death_begin > removal_bound) {
        violation('a', "owner alive: " + what +
                           (owner.death_begin ? ", killed only at " + ms_text(*owner.death_begin)
                                              : ", never killed"));
    }
    if (!r.session.empty()) {
        auto sid = m_session_of_id.find(r.session);
        if (sid != m_session_of_id.end()) {
            const Session& s = m_sessions[sid->second];
            if (!s.kill_begin || *s.kill_begin > removal_bound) {
                violation('a',
                          "session " + s.name + " alive: " + what +
                              (s.kill_begin ? ", session killed only at " + ms_text(*s.kill_begin)
                                            : ", session never killed"));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (b): stale locks

namespace {

// The (pid, acquired_at) of a worker's lock file, or nullopt when there is none.
std::optional<std::pair<pid_t, std::string>> lock_on_disk(const std::string& worker_dir) {
    std::ifstream in(worker_dir + "/.runtime/agent.lock", std::ios::binary);
    if (!in) {
        return std::nullopt;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    auto info = agentlock::parse_lock(ss.str());
    if (!info) {
        return std::make_pair(pid_t{-1}, std::string("invalid"));
    }
    return std::make_pair(static_cast<pid_t>(info->pid),
                          agentlock::format_rfc3339(info->acquired_at));
}

// Passes are judged only from their own log: a pass "started after" T when its start, estimated
// as ts - elapsed_ms, lies this much after T (the estimate is late by the time between the end of
// the pass and its log line).
constexpr long long k_start_margin_ns = 50'000'000;

} // namespace

void Soak::check_stale_locks(long long now) {
    for (auto& s : m_stale) {
        if (s.gone_at) {
            continue;
        }
        const auto on_disk = lock_on_disk(s.dir.empty() ? worker_path(s.worker) : s.dir);
        const long long seen = now_ns();
        if (!on_disk || on_disk->first != s.pid || on_disk->second != s.acquired) {
            s.gone_at = seen;
            if (s.release_sent && s.last_seen_present == s.stale_at) {
                // Its owner had unlinked it before dying: it was never a stale lock on disk.
                s.never_stale = true;
                ++m_count["stale_candidates_already_released"];
            }
            continue;
        }
        s.last_seen_present = seen;
        if (s.late_reported) {
            continue;
        }
        // Two whole passes that started after it became stale, and ended while it was still
        // there (their log line came before we saw it again), must have removed it.
        int passes = 0;
        for (const auto& p : m_passes) {
            if (p.cancelled || p.start_est <= s.stale_at + k_start_margin_ns) {
                continue;
            }
            if (p.completed + 1'000'000 >= s.last_seen_present) {
                continue;
            }
            if (!s.recorded.empty() && !p.tmux_ok) {
                continue; // tmux unknown: a lock recording a session is rightly kept
            }
            ++passes;
        }
        if (passes >= 2) {
            s.late_reported = true;
            violation('b', "stale lock on " + s.worker + " (PID " + std::to_string(s.pid) +
                               ", acquired " + s.acquired + ", session '" + s.recorded +
                               "') survived " + std::to_string(passes) +
                               " passes that started after it became stale at " +
                               ms_text(s.stale_at) + " ms");
        }
    }
    (void)now;
}

void Soak::violation(char which, const std::string& text) {
    const int i = which - 'a';
    if (m_violations[i].size() < 1000) {
        m_violations[i].push_back(text);
    }
    std::fprintf(stderr, "VIOLATION (%c): %s\n", which, text.c_str());
}

void Soak::error(const std::string& text) {
    if (m_errors.size() < 1000) {
        m_errors.push_back(text);
    }
    std::fprintf(stderr, "ERROR: %s\n", text.c_str());
}

// ---------------------------------------------------------------------------------------------
// Main loop, end and summary

int Soak::run() {
    setup();
    std::printf("soak: dir %s, %u plain agents, %u tmux sessions, %u workers, %.0f s, "
                "interval %u ms, %.1f kills/s, seed %lu\n",
                m_dir.c_str(), m_opt.agents, m_opt.tmux_sessions, m_opt.workers, m_opt.duration_s,
                m_opt.interval_ms, m_opt.kills_per_s, m_opt.seed);
    if (!m_towns.empty()) {
        std::printf("soak: %zu gastown servers, %u panes, a restart every %.1f s each\n",
                    m_towns.size(), m_opt.gastown_panes, m_opt.gastown_restart_s);
    }
    std::fflush(stdout);
    for (unsigned i = 0; i < m_opt.agents; ++i) {
        spawn_plain_agent();
    }
    for (unsigned i = 0; i < m_opt.tmux_sessions; ++i) {
        start_session();
    }
    const long long start = now_ns();
    const long long end = start + static_cast<long long>(m_opt.duration_s * 1e9);
    long long last = start;
    long long next_progress = start + 10'000'000'000LL;
    while (true) {
        const long long now = now_ns();
        if (now >= end) {
            break;
        }
        drain_messages();
        ingest_log();
        poll_deaths();
        poll_primes();
        churn(now, static_cast<double>(now - last) / 1e9);
        gastown_churn(now);
        last = now;
        drain_messages();
        check_stale_locks(now);
        int st = 0;
        if (::waitpid(m_daemon, &st, WNOHANG) == m_daemon) {
            error("agentlockd exited during the soak: " +
                  (WIFEXITED(st) ? "exit " + std::to_string(WEXITSTATUS(st))
                                 : "signal " + std::to_string(WTERMSIG(st))));
            m_daemon = -1;
            break;
        }
        if (now >= next_progress) {
            next_progress += 10'000'000'000LL;
            std::printf("soak: %.0f s: %lld acquisitions, %lld kills, %lld removals, %zu "
                        "violations\n",
                        static_cast<double>(now - start) / 1e9, m_count["acquisitions"],
                        m_count["kills_plain"] + m_count["kills_tmux_agent"], m_count["removals"],
                        m_violations[0].size() + m_violations[1].size() + m_violations[2].size());
            std::fflush(stdout);
        }
        std::this_thread::sleep_for(10ms);
    }
    finish();
    summary();
    bool ok = m_violations[0].empty() && m_violations[1].empty() && m_violations[2].empty() &&
              m_errors.empty();
    if (!m_opt.expect_violations.empty()) {
        // A self-check: it passes when every expected invariant was seen to break.
        ok = true;
        for (char c : m_opt.expect_violations) {
            const int i = c - 'a';
            if (i < 0 || i > 2 || m_violations[i].empty()) {
                std::printf("soak self-check: expected violations of (%c), saw none\n", c);
                ok = false;
            }
        }
        std::printf("soak self-check: %s\n",
                    ok ? "the expected violations were detected" : "FAILED");
    }
    if (ok && m_own_dir) {
        std::error_code ec;
        fs::remove_all(m_dir, ec);
    } else if (!ok) {
        std::printf("soak: kept %s for inspection (agentlockd.log, agents.log)\n", m_dir.c_str());
    }
    return ok ? 0 : 1;
}

void Soak::finish() {
    // Stop the churn: every agent and session dies; every lock becomes stale.
    const long long stop = now_ns();
    m_stopping = true;
    finish_gastown();
    for (auto& [name, s] : m_sessions) {
        if (!s.kill_begin) {
            kill_session(s);
        }
    }
    for (auto& a : m_agents) {
        if (!a.death_begin) {
            kill_agent(a, false, now_ns());
        }
    }
    const long long deadline = now_ns() + 20'000'000'000LL;
    while (now_ns() < deadline) {
        drain_messages();
        poll_deaths();
        bool all_dead = true;
        for (const auto& a : m_agents) {
            all_dead = all_dead && a.death_confirmed.has_value();
        }
        if (all_dead) {
            break;
        }
        std::this_thread::sleep_for(10ms);
    }
    for (const auto& a : m_agents) {
        if (!a.death_confirmed) {
            error("agent " + std::to_string(a.pid) + " did not die");
        }
    }
    drain_messages();
    // Every stale lock must go; give the daemon time for many passes (the (b) check decides
    // whether it was in time).
    const long long wait_until =
        now_ns() + std::max(10'000'000'000LL, 40LL * m_opt.interval_ms * 1'000'000);
    while (now_ns() < wait_until) {
        ingest_log();
        check_stale_locks(now_ns());
        bool all_gone = true;
        for (const auto& s : m_stale) {
            all_gone = all_gone && s.gone_at.has_value();
        }
        if (all_gone) {
            break;
        }
        std::this_thread::sleep_for(10ms);
    }
    for (const auto& s : m_stale) {
        if (!s.gone_at) {
            violation('b', "stale lock on " + s.worker + " (PID " + std::to_string(s.pid) +
                               ", session '" + s.recorded + "') never removed");
        }
    }
    // Nothing may be left in the root: every agent is dead and every session gone.
    for (unsigned i = 0; i < m_opt.workers; ++i) {
        char name[16];
        std::snprintf(name, sizeof name, "w%03u", i);
        if (auto left = lock_on_disk(worker_path(name))) {
            violation('b', std::string("a lock is left on ") + name + " after the end (PID " +
                               std::to_string(left->first) + ")");
        }
    }
    // Nor in a town: every pane, server and gt prime is gone.
    for (const auto& p : m_panes) {
        if (auto left = lock_on_disk(m_towns[p.town].root + "/" + p.worker)) {
            violation('b', "a lock is left on " + m_towns[p.town].root + "/" + p.worker +
                               " after the end (PID " + std::to_string(left->first) + ")");
        }
    }
    // Stop the daemon: SIGTERM, exit 0.
    if (m_daemon > 0) {
        ::kill(m_daemon, SIGTERM);
        int st = 0;
        const long long give_up = now_ns() + 30'000'000'000LL;
        pid_t w = 0;
        while ((w = ::waitpid(m_daemon, &st, WNOHANG)) == 0 && now_ns() < give_up) {
            std::this_thread::sleep_for(10ms);
        }
        if (w != m_daemon) {
            error("agentlockd did not exit within 30 s of SIGTERM");
            ::kill(m_daemon, SIGKILL);
            ::waitpid(m_daemon, &st, 0);
        } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            error("agentlockd ended with " + (WIFEXITED(st)
                                                  ? "exit " + std::to_string(WEXITSTATUS(st))
                                                  : "signal " + std::to_string(WTERMSIG(st))));
        }
        m_daemon = -1;
    }
    ingest_log();
    run_program({"tmux", "-L", m_tmux_name, "-f", "/dev/null", "kill-server"});
    std::error_code ec;
    fs::remove(tmux_socket_path(), ec);
    m_stop_receiver = true;
    m_receiver.join();
    ::close(m_report_fd);
    m_count["duration_ms"] = (now_ns() - stop) / 1'000'000;
}

// How long a stale lock lived, from the best clock available: the daemon's removal line, else
// the taker's HOLD (an agent took the stale lock over), else the driver's polling.
long long Soak::lifetime_of(const StaleLock& s, std::string& how) const {
    for (const auto& r : m_removals) {
        if (r.pid == s.pid && r.acquired == s.acquired && r.worker == s.worker) {
            how = "daemon";
            return std::max(0LL, r.ts - s.stale_at);
        }
    }
    for (const auto& h : m_holds) {
        if (h.worker == s.worker && h.pid != s.pid && h.t1 > s.stale_at &&
            h.t1 <= s.gone_at.value_or(LLONG_MAX)) {
            how = "takeover";
            return h.t1 - s.stale_at;
        }
    }
    how = "poll";
    return std::max(0LL, s.gone_at.value_or(s.stale_at) - s.stale_at);
}

void Soak::summary() {
    std::vector<long long> lifetimes;
    const long long two_intervals = 2LL * m_opt.interval_ms * 1'000'000;
    long long over = 0;
    std::map<std::string, long long> gone_how;
    for (const auto& s : m_stale) {
        if (s.never_stale || !s.gone_at) {
            continue;
        }
        std::string how;
        const long long l = lifetime_of(s, how);
        ++gone_how[how];
        lifetimes.push_back(l);
        if (l > two_intervals) {
            ++over;
            // Where did the time go? Passes (start, end) around the lock's stale life.
            std::string passes;
            for (const auto& p : m_passes) {
                if (p.completed > s.stale_at - 2 * two_intervals &&
                    p.start_est < s.stale_at + l + two_intervals) {
                    passes += " [" + ms_text(p.start_est - s.stale_at) + ".." +
                              ms_text(p.completed - s.stale_at) + (p.tmux_ok ? "" : " tmux?") + "]";
                }
            }
            if (over <= 20) {
                std::printf("soak: stale %.1f ms (%s): %s PID %d session '%s'%s; passes around "
                            "it (ms from stale):%s\n",
                            static_cast<double>(l) / 1e6, how.c_str(), s.worker.c_str(), s.pid,
                            s.recorded.c_str(), s.real_session ? " (tmux)" : "", passes.c_str());
            }
        }
        if (m_opt.max_stale_ms && static_cast<double>(l) / 1e6 > *m_opt.max_stale_ms) {
            violation('b', "stale lock on " + s.worker + " (PID " + std::to_string(s.pid) +
                               ") lived " + ms_text(l) + " ms > --max-stale-ms");
        }
    }
    std::sort(lifetimes.begin(), lifetimes.end());
    auto pct = [&](double q) -> long long {
        if (lifetimes.empty()) {
            return 0;
        }
        return lifetimes[std::min(
            lifetimes.size() - 1,
            static_cast<std::size_t>(q * static_cast<double>(lifetimes.size())))];
    };
    const long long removals_by_daemon = gone_how["daemon"];
    const long long passes = static_cast<long long>(m_passes.size());
    json::object out;
    out["agents_spawned"] = m_count["agents_spawned_plain"] + m_count["agents_spawned_tmux"];
    out["agents_spawned_plain"] = m_count["agents_spawned_plain"];
    out["agents_spawned_tmux"] = m_count["agents_spawned_tmux"];
    out["tmux_sessions_created"] = m_count["sessions_created"];
    out["tmux_sessions_killed"] = m_count["sessions_killed"];
    out["acquisitions"] = m_count["acquisitions"];
    out["refreshes"] = m_count["refreshes"];
    out["releases"] = m_count["releases"];
    out["busy"] = m_count["busy"];
    out["takeovers_of_stale_locks"] = m_count["takeovers"];
    out["kills_sigkill_plain"] = m_count["kills_plain"];
    out["kills_sigkill_in_tmux"] = m_count["kills_tmux_agent"];
    out["daemon_passes"] = passes;
    out["daemon_removals"] = m_count["removals"];
    out["daemon_removals_pid_dead"] = m_count["removals_pid_dead"];
    out["daemon_removals_pid_zombie"] = m_count["removals_pid_zombie"];
    out["daemon_skipped_changed"] = m_count["log_lock.skipped_changed"];
    out["daemon_held_by_session_findings"] = m_count["log_lock.held_by_session"];
    out["daemon_orphaned_findings"] = m_count["log_lock.orphaned"];
    out["daemon_tmux_unreachable"] = m_count["log_tmux.unreachable"];
    out["stale_locks"] = static_cast<long long>(lifetimes.size());
    out["stale_locks_removed_by_daemon"] = removals_by_daemon;
    out["stale_locks_taken_over_by_agents"] = gone_how["takeover"];
    out["stale_locks_gone_otherwise"] = gone_how["poll"];
    out["stale_lifetime_max_ms"] = static_cast<double>(pct(1.0)) / 1e6;
    out["stale_lifetime_p50_ms"] = static_cast<double>(pct(0.5)) / 1e6;
    out["stale_lifetime_p99_ms"] = static_cast<double>(pct(0.99)) / 1e6;
    out["stale_lifetime_over_two_intervals"] = over;
    out["interval_ms"] = m_opt.interval_ms;
    out["violations_a_live_lock_removed"] = static_cast<long long>(m_violations[0].size());
    out["violations_b_stale_lock_kept"] = static_cast<long long>(m_violations[1].size());
    out["violations_c_double_holder"] = static_cast<long long>(m_violations[2].size());
    out["errors"] = static_cast<long long>(m_errors.size());
    out["end_phase_ms"] = m_count["duration_ms"];
    if (!m_towns.empty()) {
        json::object gt;
        for (const auto& [key, value] : m_count) {
            if (key.rfind("gastown_", 0) == 0) {
                gt[key.substr(8)] = value;
            }
        }
        out["gastown"] = std::move(gt);
    }
    const std::string text = json::serialize(out);
    std::printf("soak summary: %s\n", text.c_str());
    if (!m_towns.empty()) {
        std::printf(
            "soak: gastown: %lld panes (%lld Go locks, %lld ours), %lld server restarts; "
            "%lld pane-held locks went stale, %lld removed: %lld reused ids, %lld recorded "
            "server gone, %lld no server, %lld pane gone, %lld dead pane\n",
            m_count["gastown_panes"], m_count["gastown_go_locks"], m_count["gastown_our_locks"],
            m_count["gastown_server_restarts"], m_count["gastown_stale_locks"],
            m_count["gastown_removals"], m_count["gastown_removals_reused_id"],
            m_count["gastown_removals_recorded_server_gone"], m_count["gastown_removals_no_server"],
            m_count["gastown_removals_pane_gone"], m_count["gastown_removals_dead_pane"]);
    }
    std::printf("soak: %lld acquisitions, %lld SIGKILLs (+%lld tmux sessions killed), %lld "
                "removals by agentlockd over %lld passes; stale locks: %zu, max lifetime %.1f ms "
                "(two intervals: %u ms; %lld over); violations: a=%zu b=%zu c=%zu; errors: %zu\n",
                m_count["acquisitions"], m_count["kills_plain"] + m_count["kills_tmux_agent"],
                m_count["sessions_killed"], m_count["removals"], passes, lifetimes.size(),
                static_cast<double>(pct(1.0)) / 1e6, 2 * m_opt.interval_ms, over,
                m_violations[0].size(), m_violations[1].size(), m_violations[2].size(),
                m_errors.size());
    if (!m_opt.summary_json.empty()) {
        std::ofstream(m_opt.summary_json) << text << "\n";
    }
}

} // namespace

int main(int argc, char** argv) {
    ::signal(SIGPIPE, SIG_IGN);
    Soak soak(parse_options(argc, argv));
    return soak.run();
}
