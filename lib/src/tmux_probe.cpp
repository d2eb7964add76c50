#include <agentlock/tmux_probe.hpp>

#include <agentlock/fd.hpp>
#include <agentlock/tmux_servers.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <optional>
#include <poll.h>
#include <set>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace agentlock {

// How tmux 3.3a reports failures of `list-panes -a`, seen on Debian 12 (exit status, stderr):
//
//   server ended (kill-server, last session closed, SIGTERM or SIGKILL to the server):
//       tmux leaves its socket file behind; connect() fails with ECONNREFUSED:
//       1, "no server running on /tmp/tmux-0/NAME"
//   socket file missing (never started, wrong -L name, wrong -S path, missing directory, /tmp
//   cleaned after a reboot):
//       1, "error connecting to /tmp/tmux-0/NAME (No such file or directory)"
//   socket not accessible to us (another user's server, mode 000):
//       1, "error connecting to PATH (Permission denied)"
//   socket accessible but the server belongs to another user and does not grant access:
//       0 (!), nothing on stdout, "access not allowed" on stderr
//   $TMUX_TMPDIR/tmux-UID with the wrong owner or mode:
//       1, "directory PATH has unsafe permissions"
//   something else listening on the socket, or a server in the middle of exiting:
//       1, "server exited unexpectedly"
//   a server with no sessions (exit-empty off, or its last session just closed):
//       1, "no current target"
//   a file name too long for a socket:
//       1, "error connecting to PATH (File name too long)"
//
// Two answers are definitive. "no server running on PATH" is no-server, but only while PATH
// still names a socket (a regular file or a directory at the -S path also yields ECONNREFUSED:
// a misconfiguration, not a server that ended). "no current target" is a server that answered
// and has no sessions: ok, with empty sets. Everything else is unknown. ENOENT is deliberately NOT
// no-server: a wrong socket name or path produces exactly the same words, and reading that as "no
// sessions" is how upstream deleted the locks of live sessions. Since a normally
// ended server leaves its socket behind, this costs little: only after /tmp is wiped (a reboot) and
// before any server starts on that socket do dead-PID locks that record a session stay "unknown"
// instead of "stale".

namespace {

// One line per pane; the server's start_time and pid repeat on every line, which costs the same
// as a listing without them (measured: 50 queries of 3 panes in 0.17 s either way), and keeps to
// one query per server. The session name goes last: it is the only free-form field.
constexpr std::string_view k_format = "#{session_id}\t#{pane_id}\t#{pane_pid}\t#{pane_dead}\t"
                                      "#{session_created}\t#{start_time}\t#{pid}\t#{session_name}";
constexpr std::size_t k_fixed_fields = 7;
constexpr std::string_view k_no_server_prefix = "no server running on ";
// list-panes -a finds no "current" session to start from only when the server has none.
constexpr std::string_view k_no_sessions = "no current target";
constexpr std::size_t k_max_stdout_bytes = 16 * 1024 * 1024;
constexpr std::size_t k_max_stderr_bytes = 64 * 1024;

TmuxFacts failure(TmuxState state, std::string detail) {
    TmuxFacts f;
    f.state = state;
    f.detail = std::move(detail);
    return f;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) {
        s.remove_suffix(1);
    }
    while (!s.empty() && (s.front() == '\n' || s.front() == '\r' || s.front() == ' ')) {
        s.remove_prefix(1);
    }
    return s;
}

// The child's file actions and attributes, released however spawn() returns.
class SpawnSetup {
public:
    SpawnSetup() {
        m_actions_err = ::posix_spawn_file_actions_init(&m_actions);
        m_attr_err = ::posix_spawnattr_init(&m_attr);
    }
    ~SpawnSetup() {
        if (m_actions_err == 0) {
            ::posix_spawn_file_actions_destroy(&m_actions);
        }
        if (m_attr_err == 0) {
            ::posix_spawnattr_destroy(&m_attr);
        }
    }
    SpawnSetup(const SpawnSetup&) = delete;
    SpawnSetup& operator=(const SpawnSetup&) = delete;
    int init_error() const { return m_actions_err != 0 ? m_actions_err : m_attr_err; }
    posix_spawn_file_actions_t* actions() { return &m_actions; }
    posix_spawnattr_t* attr() { return &m_attr; }

private:
    posix_spawn_file_actions_t m_actions{};
    posix_spawnattr_t m_attr{};
    int m_actions_err = -1;
    int m_attr_err = -1;
};

struct Pipe {
    Fd read_end;
    Fd write_end;
};

std::optional<Pipe> make_pipe(int& saved_errno) {
    int fds[2] = {-1, -1};
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        saved_errno = errno;
        return std::nullopt;
    }
    return Pipe{Fd(fds[0]), Fd(fds[1])};
}

// Kills the child's process group and reaps the child. The child leads its own group (it has
// not been reaped, so its PID cannot have been reused), which also reaches a wrapper script's
// children.
void kill_and_reap(pid_t pid) {
    (void)::kill(-pid, SIGKILL); // ESRCH: the group is already gone; reaping below still runs
    (void)::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
}

enum class Drain { open, closed, too_large, failed };

// Reads whatever is available on `fd` into `out`, at most `cap` bytes in all.
Drain drain(int fd, std::string& out, std::size_t cap, int& saved_errno) {
    char buf[4096];
    while (true) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n > 0) {
            if (out.size() + static_cast<std::size_t>(n) > cap) {
                return Drain::too_large;
            }
            out.append(buf, static_cast<std::size_t>(n));
            continue;
        }
        if (n == 0) {
            return Drain::closed;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return Drain::open;
        }
        // A listing with a hole in it must not pass for a complete one.
        saved_errno = errno;
        return Drain::failed;
    }
}

int remaining_ms(std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
        return 0;
    }
    // Round up so a sub-millisecond remainder does not spin.
    return static_cast<int>(std::min<long long>(left.count() + 1, 60'000));
}

// Why a connect() to the socket at `path` was not refused, or "" when it was (ECONNREFUSED:
// nothing listens there). tmux prints "no server running" exactly when its own connect() was
// refused, so this is the same check made by us: a socket that accepts a connection, or fails in
// any other way, has not been shown to have no server.
std::string connect_not_refused(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) {
        return "its path is too long to check";
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    // Non-blocking: a listener whose backlog is full answers EAGAIN at once, never a wait.
    const Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) {
        return std::string("socket: ") + std::strerror(errno);
    }
    const int rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    if (rc == 0 || errno == EAGAIN) {
        return "but " + path + " accepts connections";
    }
    if (errno == ECONNREFUSED) {
        return "";
    }
    return "but connecting to " + path + " failed otherwise: " + std::strerror(errno);
}

// "no server running on PATH" is trusted only while PATH is still a socket that refuses
// connections.
TmuxFacts classify_no_server(std::string_view message) {
    const std::string path(message.substr(k_no_server_prefix.size()));
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        int saved = errno;
        return failure(TmuxState::unknown,
                       std::string(message) + "; lstat " + path + ": " + std::strerror(saved));
    }
    if (!S_ISSOCK(st.st_mode)) {
        return failure(TmuxState::unknown, std::string(message) + "; " + path + " is not a socket");
    }
    if (const std::string why = connect_not_refused(path); !why.empty()) {
        return failure(TmuxState::unknown, std::string(message) + "; " + why);
    }
    TmuxFacts f = failure(TmuxState::no_server, std::string(message));
    f.socket_path = path;
    return f;
}

// A decimal integer of at most 18 digits (so that seconds fit a Timestamp), or nullopt.
std::optional<std::int64_t> parse_decimal(std::string_view text) {
    if (text.empty() || text.size() > 18) {
        return std::nullopt;
    }
    std::int64_t value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        value = value * 10 + (c - '0');
    }
    return value;
}

// Seconds since the epoch as tmux prints a time; nullopt for text that is not one.
std::optional<Timestamp> parse_tmux_time(std::string_view text) {
    const std::optional<std::int64_t> seconds = parse_decimal(text);
    // Timestamp counts nanoseconds in 64 bits: about 292 years either side of 1970.
    if (!seconds || *seconds > 9'000'000'000) {
        return std::nullopt;
    }
    return Timestamp(std::chrono::seconds(*seconds));
}

bool valid_id(std::string_view id, char sigil) {
    return id.size() >= 2 && id[0] == sigil && parse_decimal(id.substr(1)).has_value();
}

} // namespace

std::string_view to_string(TmuxState state) {
    switch (state) {
    case TmuxState::ok:
        return "ok";
    case TmuxState::no_server:
        return "no-server";
    case TmuxState::unknown:
        return "unknown";
    }
    return "unknown";
}

bool TmuxFacts::has(std::string_view session_id) const {
    if (session_id.empty()) {
        return false;
    }
    const std::string key(session_id);
    // Exact matches only: "$N" is a session id and "%N" a pane id; they are different
    // numbering spaces and never alias each other. Agents often record $TMUX_PANE ("%N") as
    // their session_id, so "%N" must match a real pane, never the session "$N".
    return session_names.count(key) != 0 || session_ids.count(key) != 0 || pane_ids.count(key) != 0;
}

bool TmuxFacts::has_live(std::string_view session_id) const {
    if (!has(session_id)) {
        return false;
    }
    const auto live_session = [](const TmuxSession& s) { return s.dead_panes < s.panes; };
    if (auto pane = panes.find(session_id); pane != panes.end() && pane->second.dead != true) {
        return true;
    }
    if (auto by_id = sessions.find(session_id);
        by_id != sessions.end() && live_session(by_id->second)) {
        return true;
    }
    bool detailed = panes.count(session_id) != 0 || sessions.count(session_id) != 0;
    for (const auto& [id, s] : sessions) {
        if (s.name == session_id) {
            detailed = true;
            if (live_session(s)) {
                return true;
            }
        }
    }
    return !detailed; // listed without details: as has() says
}

std::vector<std::int64_t> tmux_hold_pids(const TmuxFacts& facts, std::string_view session_id) {
    std::vector<std::int64_t> pids;
    if (facts.state != TmuxState::ok || session_id.empty()) {
        return pids;
    }
    if (facts.server_pid) {
        pids.push_back(*facts.server_pid);
    }
    // A pane by its id at once; the panes are scanned only for a lock held by a session. The
    // daemon asks this for every held lock after each answer: gastown's locks record panes.
    if (auto pane = facts.panes.find(session_id); pane != facts.panes.end() && pane->second.pid) {
        pids.push_back(*pane->second.pid);
    }
    std::set<std::string_view> sessions; // the "$N" of the recorded session, by id or name
    if (facts.sessions.count(session_id) != 0) {
        sessions.insert(session_id);
    }
    for (const auto& [id, s] : facts.sessions) {
        if (s.name == session_id) {
            sessions.insert(id);
        }
    }
    if (!sessions.empty()) {
        for (const auto& [id, pane] : facts.panes) {
            if (pane.pid && sessions.count(pane.session_id) != 0) {
                pids.push_back(*pane.pid);
            }
        }
    }
    std::sort(pids.begin(), pids.end());
    pids.erase(std::unique(pids.begin(), pids.end()), pids.end());
    return pids;
}

namespace {
// Runs `args` (tmux list-panes ...) with a deadline and classifies the answer.
TmuxFacts run_listing(std::vector<std::string>& args, std::chrono::milliseconds timeout,
                      const std::string& binary);
} // namespace

SystemTmuxProbe::SystemTmuxProbe(TmuxServer server, std::chrono::milliseconds timeout,
                                 std::string tmux_binary)
    : m_server(std::move(server)), m_timeout(timeout), m_binary(std::move(tmux_binary)) {}

TmuxFacts SystemTmuxProbe::query() {
    // The environment is passed on unchanged: TMUX_TMPDIR decides where -L sockets live, and
    // with neither -L nor -S tmux talks to the server named by $TMUX, like any tmux command
    // run from the same place would.
    std::vector<std::string> args{m_binary};
    if (!m_server.socket_path.empty()) {
        args.insert(args.end(), {"-S", m_server.socket_path});
    } else if (!m_server.socket_name.empty()) {
        args.insert(args.end(), {"-L", m_server.socket_name});
    }
    args.insert(args.end(), {"list-panes", "-a", "-F", std::string(k_format)});
    const auto asked_at =
        std::chrono::time_point_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now());
    TmuxFacts facts = run_listing(args, m_timeout, m_binary);
    facts.asked_at = asked_at;
    if (facts.state == TmuxState::ok) {
        facts.listed_at = std::chrono::time_point_cast<std::chrono::nanoseconds>(
            std::chrono::system_clock::now());
    }
    if (facts.socket_path.empty()) {
        facts.socket_path = m_server.socket_path;
    }
    facts.server = describe_tmux_server(m_server);
    return facts;
}

std::string_view tmux_listing_format() {
    return k_format;
}

namespace {

TmuxFacts run_listing(std::vector<std::string>& args, std::chrono::milliseconds timeout,
                      const std::string& binary) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::vector<char*> argv;
    argv.reserve(args.size() + 1);
    for (auto& a : args) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);

    int err = 0;
    std::optional<Pipe> out = make_pipe(err);
    if (!out) {
        return failure(TmuxState::unknown, std::string("pipe: ") + std::strerror(err));
    }
    std::optional<Pipe> errp = make_pipe(err);
    if (!errp) {
        return failure(TmuxState::unknown, std::string("pipe: ") + std::strerror(err));
    }

    SpawnSetup setup;
    if (setup.init_error() != 0) {
        return failure(TmuxState::unknown,
                       std::string("posix_spawn setup: ") + std::strerror(setup.init_error()));
    }
    // stdin is /dev/null: the probe must never read the caller's terminal or input.
    int rc =
        ::posix_spawn_file_actions_addopen(setup.actions(), STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    if (rc == 0) {
        rc = ::posix_spawn_file_actions_adddup2(setup.actions(), out->write_end.get(),
                                                STDOUT_FILENO);
    }
    if (rc == 0) {
        rc = ::posix_spawn_file_actions_adddup2(setup.actions(), errp->write_end.get(),
                                                STDERR_FILENO);
    }
    sigset_t no_signals;
    sigset_t all_signals;
    if (rc == 0 && (::sigemptyset(&no_signals) != 0 || ::sigfillset(&all_signals) != 0)) {
        rc = errno;
    }
    if (rc == 0) {
        // Own process group, so a time-out can kill everything the binary started; default
        // signal dispositions and an empty mask, whatever the daemon set up for itself.
        rc = ::posix_spawnattr_setflags(setup.attr(), static_cast<short>(POSIX_SPAWN_SETPGROUP |
                                                                         POSIX_SPAWN_SETSIGMASK |
                                                                         POSIX_SPAWN_SETSIGDEF));
    }
    if (rc == 0) {
        rc = ::posix_spawnattr_setpgroup(setup.attr(), 0);
    }
    if (rc == 0) {
        rc = ::posix_spawnattr_setsigmask(setup.attr(), &no_signals);
    }
    if (rc == 0) {
        rc = ::posix_spawnattr_setsigdefault(setup.attr(), &all_signals);
    }
    if (rc != 0) {
        return failure(TmuxState::unknown, std::string("posix_spawn setup: ") + std::strerror(rc));
    }

    pid_t pid = -1;
    rc = ::posix_spawnp(&pid, binary.c_str(), setup.actions(), setup.attr(), argv.data(), environ);
    if (rc != 0) {
        std::string detail = "spawn " + binary + ": " + std::strerror(rc);
        if (rc == ENOENT) {
            detail = "tmux not found: " + detail;
        }
        return failure(TmuxState::unknown, detail);
    }
    out->write_end.reset();
    errp->write_end.reset();

    for (Fd* fd : {&out->read_end, &errp->read_end}) {
        int flags = ::fcntl(fd->get(), F_GETFL);
        if (flags < 0 || ::fcntl(fd->get(), F_SETFL, flags | O_NONBLOCK) != 0) {
            int saved = errno;
            kill_and_reap(pid);
            return failure(TmuxState::unknown, std::string("fcntl pipe: ") + std::strerror(saved));
        }
    }

    const std::string timeout_text =
        "tmux timed out after " + std::to_string(timeout.count()) + " ms";
    std::string out_text;
    std::string err_text;
    bool out_open = true;
    bool err_open = true;
    while (out_open || err_open) {
        pollfd fds[2] = {{out_open ? out->read_end.get() : -1, POLLIN, 0},
                         {err_open ? errp->read_end.get() : -1, POLLIN, 0}};
        int ready = ::poll(fds, 2, remaining_ms(deadline));
        if (ready < 0) {
            if (errno == EINTR) {
                continue;
            }
            int saved = errno;
            kill_and_reap(pid);
            return failure(TmuxState::unknown, std::string("poll: ") + std::strerror(saved));
        }
        if (ready == 0) {
            kill_and_reap(pid);
            return failure(TmuxState::unknown, timeout_text);
        }
        Drain out_state = Drain::open;
        Drain err_state = Drain::open;
        int read_errno = 0;
        if (out_open && fds[0].revents != 0) {
            out_state = drain(out->read_end.get(), out_text, k_max_stdout_bytes, read_errno);
            out_open = out_state == Drain::open;
        }
        if (err_open && fds[1].revents != 0) {
            err_state = drain(errp->read_end.get(), err_text, k_max_stderr_bytes, read_errno);
            err_open = err_state == Drain::open;
        }
        if (out_state == Drain::too_large || err_state == Drain::too_large) {
            kill_and_reap(pid);
            return failure(TmuxState::unknown, "tmux output exceeds its size limit");
        }
        if (out_state == Drain::failed || err_state == Drain::failed) {
            kill_and_reap(pid);
            return failure(TmuxState::unknown,
                           std::string("read tmux output: ") + std::strerror(read_errno));
        }
    }

    // Both pipes are closed: the child has exited or is about to. Reap it within the deadline.
    int status = 0;
    while (true) {
        pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            break;
        }
        if (r < 0 && errno != EINTR) {
            int saved = errno;
            return failure(TmuxState::unknown,
                           "waitpid " + std::to_string(pid) + ": " + std::strerror(saved));
        }
        if (remaining_ms(deadline) == 0) {
            kill_and_reap(pid);
            return failure(TmuxState::unknown, timeout_text);
        }
        (void)::poll(nullptr, 0, 5); // a pause, not a wait for anything
    }

    const std::string_view message = trim(err_text);
    if (WIFSIGNALED(status)) {
        return failure(TmuxState::unknown,
                       "tmux killed by signal " + std::to_string(WTERMSIG(status)) +
                           (message.empty() ? "" : ": " + std::string(message)));
    }
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code == 0) {
        // tmux 3.3a exits 0 with "access not allowed" when a server refuses us: anything on
        // stderr means the listing cannot be trusted.
        if (!message.empty()) {
            return failure(TmuxState::unknown, "tmux: " + std::string(message));
        }
        // A server with no sessions says "no current target" and exits 1, so an empty
        // successful listing is not something tmux produces: do not read it as "no sessions".
        if (trim(out_text).empty()) {
            return failure(TmuxState::unknown, "tmux listed nothing and reported no error");
        }
        return parse_tmux_listing(out_text);
    }
    if (message.substr(0, k_no_server_prefix.size()) == k_no_server_prefix &&
        message.find('\n') == std::string_view::npos) {
        return classify_no_server(message);
    }
    if (message == k_no_sessions) {
        TmuxFacts f;
        f.state = TmuxState::ok;
        f.detail = "tmux server has no sessions";
        return f;
    }
    if (message.empty()) {
        return failure(TmuxState::unknown, "tmux exited with status " + std::to_string(code));
    }
    return failure(TmuxState::unknown, std::string(message));
}

} // namespace

TmuxFacts parse_tmux_listing(std::string_view output) {
    TmuxFacts facts;
    facts.state = TmuxState::ok;
    std::size_t line_no = 0;
    bool seen_server = false;
    while (!output.empty()) {
        const std::size_t nl = output.find('\n');
        std::string_view line = output.substr(0, nl);
        output = nl == std::string_view::npos ? std::string_view{} : output.substr(nl + 1);
        ++line_no;
        while (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        if (line.empty()) {
            continue;
        }
        // tmux prints a tab inside a session name as "\t", so the first seven tabs are ours and
        // the name is everything after the seventh (spaces and ':' included).
        std::array<std::string_view, k_fixed_fields + 1> field{};
        std::string_view rest = line;
        bool complete = true;
        for (std::size_t f = 0; f < k_fixed_fields; ++f) {
            const std::size_t tab = rest.find('\t');
            if (tab == std::string_view::npos) {
                complete = false;
                break;
            }
            field[f] = rest.substr(0, tab);
            rest = rest.substr(tab + 1);
        }
        field[k_fixed_fields] = rest;
        const auto bad = [&](std::string_view what) {
            // A listing we cannot read completely must not pass for a complete one.
            return failure(TmuxState::unknown,
                           "unexpected tmux output on line " + std::to_string(line_no) + " (" +
                               std::string(what) + "): " + std::string(line.substr(0, 200)));
        };
        if (!complete || !valid_id(field[0], '$') || !valid_id(field[1], '%') ||
            field[k_fixed_fields].empty()) {
            return bad("not session id, pane id, ..., name");
        }
        // An empty field is a variable this tmux does not know: its fact stays unset. Anything
        // else must read as what it is.
        TmuxPane pane;
        pane.id = std::string(field[1]);
        pane.session_id = std::string(field[0]);
        if (!field[2].empty()) {
            pane.pid = parse_decimal(field[2]);
            if (!pane.pid || *pane.pid <= 0) {
                return bad("pane_pid");
            }
        }
        if (field[3] == "1" || field[3] == "0") {
            pane.dead = field[3] == "1";
        } else if (!field[3].empty()) {
            return bad("pane_dead");
        }
        std::optional<Timestamp> created;
        if (!field[4].empty() && !(created = parse_tmux_time(field[4]))) {
            return bad("session_created");
        }
        std::optional<Timestamp> started;
        if (!field[5].empty() && !(started = parse_tmux_time(field[5]))) {
            return bad("start_time");
        }
        std::optional<std::int64_t> server_pid;
        if (!field[6].empty() && (!(server_pid = parse_decimal(field[6])) || *server_pid <= 0)) {
            return bad("pid");
        }
        // Every line is the same server's: lines that disagree on it are not one listing.
        if (seen_server && (started != facts.server_started || server_pid != facts.server_pid)) {
            return bad("another server's start_time or pid");
        }
        seen_server = true;
        facts.server_started = started;
        facts.server_pid = server_pid;

        const std::string name(field[k_fixed_fields]);
        TmuxSession& session = facts.sessions[pane.session_id];
        if (session.id.empty()) {
            session.id = pane.session_id;
            session.name = name;
            session.created = created;
        } else if (session.name != name || session.created != created) {
            return bad("one session id with two names or creation times");
        }
        ++session.panes;
        if (!pane.dead) {
            ++session.unread_panes;
        } else if (*pane.dead) {
            ++session.dead_panes;
        }
        facts.session_ids.insert(session.id);
        facts.session_names.insert(name);
        facts.pane_ids.insert(pane.id);
        // A linked window lists a pane again, the same pane: lines that disagree on its process
        // or its state are not one listing (whichever came first would decide otherwise).
        if (auto [listed, added] = facts.panes.emplace(pane.id, pane);
            !added && (listed->second.pid != pane.pid || listed->second.dead != pane.dead)) {
            return bad("one pane id with two pids or states");
        }
    }
    return facts;
}

} // namespace agentlock
