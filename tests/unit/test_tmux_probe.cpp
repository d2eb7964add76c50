// The tmux probe against a real tmux server on a private socket, and against stand-in binaries
// for what a real server cannot be made to do on demand. Only "no server running" means no
// sessions: every other failure is unknown, so a wrong socket never makes live sessions look gone.
// Session ids ("$N") and pane ids ("%N") are matched each as what it is.

#include <agentlock/tmux_probe.hpp>

#include "test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

namespace agentlock {
namespace {

using namespace std::chrono_literals;
using test::TempDir;
using test::TmuxServerFixture;

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) {
        s.pop_back();
    }
    return s;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty()) {
            out.push_back(line);
        }
    }
    return out;
}

// An executable shell script standing in for the tmux binary.
std::string write_script(const TempDir& dir, const std::string& name, const std::string& body) {
    const std::string path = dir.sub(name);
    test::write_file(path, "#!/bin/sh\n" + body + "\n");
    if (::chmod(path.c_str(), 0755) != 0) {
        throw std::runtime_error("chmod " + path + ": " + std::strerror(errno));
    }
    return path;
}

// Forks, drops to uid/gid 65534, queries with `probe`; returns "state\ndetail" or "nodrop...".
std::string query_as_nobody(SystemTmuxProbe& probe) {
    test::AsUserResult r = test::run_as_nobody([&probe] {
        TmuxFacts f = probe.query();
        return std::string(to_string(f.state)) + "\n" + f.detail;
    });
    return r.dropped ? r.output : "nodrop " + r.output;
}

// A tmux server on an explicit -S path (the fixture only does -L), killed on destruction.
class SocketPathServer {
public:
    explicit SocketPathServer(std::string path) : m_path(std::move(path)) {}
    ~SocketPathServer() { tmux("kill-server"); }
    SocketPathServer(const SocketPathServer&) = delete;
    SocketPathServer& operator=(const SocketPathServer&) = delete;
    test::CommandResult tmux(const std::string& args) {
        return test::run_command("tmux -S '" + m_path + "' -f /dev/null " + args + " 2>/dev/null");
    }
    const std::string& path() const { return m_path; }

private:
    std::string m_path;
};

// One line of the probe's listing format, with plausible facts unless told otherwise.
struct Line {
    std::string session = "$0";
    std::string pane = "%0";
    std::string name = "main";
    std::string pane_pid = "4242";
    std::string dead = "0";
    std::string created = "1700000100";
    std::string started = "1700000000";
    std::string server_pid = "4000";
    std::string text() const {
        return session + "\t" + pane + "\t" + pane_pid + "\t" + dead + "\t" + created + "\t" +
               started + "\t" + server_pid + "\t" + name + "\n";
    }
};

// The same line as printf(1) needs it in a stand-in script ('%' doubled).
std::string printf_line(const Line& l) {
    std::string out;
    for (char c : l.text()) {
        if (c == '%') {
            out += "%%";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return "printf '" + out + "'";
}

Line line(std::string session, std::string pane, std::string name) {
    Line l;
    l.session = std::move(session);
    l.pane = std::move(pane);
    l.name = std::move(name);
    return l;
}

SystemTmuxProbe probe_for(const TmuxServerFixture& server) {
    return SystemTmuxProbe(TmuxServer{server.socket_name(), ""});
}

// --- a real server ----------------------------------------------------------------------------

TEST(TmuxProbe, ListsSessionNamesIdsAndPanes) {
    TmuxServerFixture server;
    const std::string alpha_id = server.new_session("alpha");
    const std::string beta_id = server.new_session("gt rig: w01"); // ':' becomes '_' in tmux
    const std::string alpha_pane = server.pane_of("alpha");

    TmuxFacts f = probe_for(server).query();
    ASSERT_EQ(f.state, TmuxState::ok) << f.detail;
    EXPECT_EQ(f.session_names, (std::set<std::string>{"alpha", "gt rig_ w01"}));
    EXPECT_EQ(f.session_ids, (std::set<std::string>{alpha_id, beta_id}));
    EXPECT_EQ(f.pane_ids.size(), 2u);
    EXPECT_TRUE(f.has("alpha"));
    EXPECT_TRUE(f.has("gt rig_ w01"));
    EXPECT_TRUE(f.has(alpha_id));
    EXPECT_TRUE(f.has(beta_id));
    EXPECT_TRUE(f.has(alpha_pane));
    EXPECT_FALSE(f.has("gamma"));
    EXPECT_FALSE(f.has("alph"));
    EXPECT_FALSE(f.has(""));
}

// The facts the judge reads of identity over time, from a real server: its start time and PID,
// each session's creation time, each pane's PID and whether its process has exited.
TEST(TmuxProbe, ReportsServerStartSessionTimesPanePidsAndDeadPanes) {
    TmuxServerFixture server;
    const auto before = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
    const std::string live_id = server.new_session("live");
    ASSERT_EQ(server.tmux("set-option -g remain-on-exit on").status, 0);
    ASSERT_EQ(server.tmux("new-session -d -s gone 'exit 0'").status, 0);
    const auto after = std::chrono::system_clock::now();
    const pid_t live_pid = server.pane_pid("live");
    const std::string live_pane = server.pane_of("live");
    const std::string gone_pane = server.pane_of("gone");
    ASSERT_TRUE(test::wait_until(
        [&] { return trim(server.tmux("list-panes -t gone -F '#{pane_dead}'").out) == "1"; }));
    const pid_t server_pid =
        static_cast<pid_t>(std::stol(trim(server.tmux("display-message -p -t live '#{pid}'").out)));

    TmuxFacts f = probe_for(server).query();
    ASSERT_EQ(f.state, TmuxState::ok) << f.detail;
    EXPECT_EQ(f.server_pid, server_pid);
    ASSERT_TRUE(f.server_started);
    EXPECT_GE(*f.server_started, before);
    EXPECT_LE(*f.server_started, after);
    ASSERT_EQ(f.sessions.count(live_id), 1u);
    const TmuxSession& live = f.sessions.at(live_id);
    EXPECT_EQ(live.name, "live");
    ASSERT_TRUE(live.created);
    EXPECT_GE(*live.created, before);
    EXPECT_LE(*live.created, after);
    EXPECT_EQ(live.panes, 1u);
    EXPECT_EQ(live.dead_panes, 0u);
    EXPECT_EQ(f.panes.at(live_pane).pid, live_pid);
    EXPECT_EQ(f.panes.at(live_pane).dead, false);
    EXPECT_EQ(f.panes.at(gone_pane).dead, true);
    const std::string gone_id = f.panes.at(gone_pane).session_id;
    EXPECT_EQ(f.sessions.at(gone_id).name, "gone");
    EXPECT_EQ(f.sessions.at(gone_id).dead_panes, 1u);
    EXPECT_EQ(f.sessions.at(gone_id).panes, 1u);
}

// "$N" (session) and "%N" (pane) are different number spaces. Arrange them to diverge:
// panes of a killed session leave pane numbers that no longer exist while session numbers do.
TEST(TmuxProbe, SessionIdsAndPaneIdsNeverAlias) {
    TmuxServerFixture server;
    server.new_session("first");
    for (int i = 0; i < 3; ++i) {
        ASSERT_EQ(server.tmux("split-window -d -t first 'sleep 100000'").status, 0);
    }
    server.new_session("second");
    server.new_session("third");
    server.kill_session("first");

    // Ground truth straight from tmux.
    std::set<std::string> real_sessions;
    for (const auto& l : lines_of(server.tmux("list-sessions -F '#{session_id}'").out)) {
        real_sessions.insert(l);
    }
    std::set<std::string> real_panes;
    for (const auto& l : lines_of(server.tmux("list-panes -a -F '#{pane_id}'").out)) {
        real_panes.insert(l);
    }
    ASSERT_EQ(real_sessions.size(), 2u);
    ASSERT_EQ(real_panes.size(), 2u);

    TmuxFacts f = probe_for(server).query();
    ASSERT_EQ(f.state, TmuxState::ok) << f.detail;
    EXPECT_EQ(f.session_ids, real_sessions);
    EXPECT_EQ(f.pane_ids, real_panes);

    int session_only = 0; // "$N" live, "%N" not a pane
    int pane_only = 0;    // "%N" live, "$N" not a session
    for (const auto& s : real_sessions) {
        const std::string as_pane = "%" + s.substr(1);
        EXPECT_TRUE(f.has(s));
        if (real_panes.count(as_pane) == 0) {
            EXPECT_FALSE(f.has(as_pane)) << as_pane << " must not alias session " << s;
            ++session_only;
        }
    }
    for (const auto& p : real_panes) {
        const std::string as_session = "$" + p.substr(1);
        EXPECT_TRUE(f.has(p));
        if (real_sessions.count(as_session) == 0) {
            EXPECT_FALSE(f.has(as_session)) << as_session << " must not alias pane " << p;
            ++pane_only;
        }
    }
    // The set-up must actually produce diverging numbers, or this test proves nothing.
    EXPECT_GT(session_only, 0);
    EXPECT_GT(pane_only, 0);
}

TEST(TmuxProbe, SocketPathVariantAndPathWinsOverName) {
    TmuxServerFixture server;
    const std::string id = server.new_session("by-path");
    SystemTmuxProbe by_path(TmuxServer{"", server.socket_path()});
    TmuxFacts f = by_path.query();
    ASSERT_EQ(f.state, TmuxState::ok) << f.detail;
    EXPECT_TRUE(f.has("by-path"));
    EXPECT_TRUE(f.has(id));

    SystemTmuxProbe both(TmuxServer{"agentlock-no-such-server", server.socket_path()});
    TmuxFacts g = both.query();
    ASSERT_EQ(g.state, TmuxState::ok) << g.detail;
    EXPECT_TRUE(g.has("by-path"));
}

TEST(TmuxProbe, ServerOnAnExplicitSocketPath) {
    TempDir dir;
    SocketPathServer server(dir.sub("agents.sock"));
    ASSERT_EQ(server.tmux("new-session -d -s 'w 01' 'sleep 100000'").status, 0);
    TmuxFacts f = SystemTmuxProbe(TmuxServer{"", server.path()}).query();
    ASSERT_EQ(f.state, TmuxState::ok) << f.detail;
    EXPECT_EQ(f.session_names, (std::set<std::string>{"w 01"}));
}

// Queries until the answer is no_server (or the deadline passes). While a server shuts down,
// tmux may briefly answer "no current target" (sessions gone, server not yet exited: truly no
// sessions) or "server exited unexpectedly" (its socket still accepts, then closes), which must
// come out as unknown. Returns the unknown details seen on the way.
std::vector<std::string> settle_to_no_server(const TmuxServerFixture& server, TmuxFacts& last) {
    std::vector<std::string> seen;
    test::wait_until([&] {
        last = probe_for(server).query();
        if (last.state == TmuxState::ok && last.session_names.empty()) {
            EXPECT_EQ(last.detail, "tmux server has no sessions");
        }
        if (last.state == TmuxState::unknown) {
            seen.push_back(last.detail);
        }
        return last.state == TmuxState::no_server;
    });
    return seen;
}

// A server that was stopped leaves its socket behind; tmux says "no server running on":
// definitive, there are no sessions.
TEST(TmuxProbe, AfterKillServerIsNoServer) {
    TmuxServerFixture server;
    server.new_session("doomed");
    ASSERT_EQ(probe_for(server).query().state, TmuxState::ok);
    server.kill_server();
    TmuxFacts f;
    std::vector<std::string> transient = settle_to_no_server(server, f);
    ASSERT_EQ(f.state, TmuxState::no_server) << f.detail;
    EXPECT_EQ(f.detail, "no server running on " + server.socket_path());
    EXPECT_TRUE(f.session_names.empty());
    for (const auto& d : transient) {
        EXPECT_EQ(d, "server exited unexpectedly");
    }
}

TEST(TmuxProbe, AfterLastSessionEndsIsNoServer) {
    TmuxServerFixture server;
    server.new_session("only");
    server.kill_session("only"); // exit-empty is on by default: the server exits
    TmuxFacts f;
    std::vector<std::string> transient = settle_to_no_server(server, f);
    ASSERT_EQ(f.state, TmuxState::no_server) << f.detail;
    for (const auto& d : transient) {
        EXPECT_EQ(d, "server exited unexpectedly");
    }
}

// The address of the Unix socket at `path` (which the tests keep short enough).
sockaddr_un unix_address(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), std::min(path.size() + 1, sizeof addr.sun_path - 1));
    return addr;
}

// A Unix socket bound at `path`, listening or not; -1 (and a test failure) when it cannot be.
int bound_socket(const std::string& path, bool listening) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr = unix_address(path);
    if (fd < 0 || path.size() >= sizeof addr.sun_path) {
        ADD_FAILURE() << "socket for " << path;
        return -1;
    }
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        (listening && ::listen(fd, 1) != 0)) {
        ADD_FAILURE() << "bind/listen " << path << ": " << std::strerror(errno);
        ::close(fd);
        return -1;
    }
    return fd;
}

TEST(TmuxProbe, StaleSocketWithoutServerIsNoServer) {
    TempDir dir;
    const std::string path = dir.sub("stale.sock");
    const int fd = bound_socket(path, false);
    ASSERT_GE(fd, 0);
    ::close(fd); // bound, never listened: connect() gets ECONNREFUSED

    TmuxFacts f = SystemTmuxProbe(TmuxServer{"", path}).query();
    EXPECT_EQ(f.state, TmuxState::no_server) << f.detail;
}

// tmux says "no server running" when its connect() is refused. Said of a socket that accepts
// connections (a tmux that lies, or a server started since), it is not believed.
TEST(TmuxProbe, NoServerMessageWhileTheSocketAcceptsConnectionsIsUnknown) {
    TempDir dir;
    const std::string path = dir.sub("listening.sock");
    const int fd = bound_socket(path, true);
    ASSERT_GE(fd, 0);
    const std::string script =
        write_script(dir, "fake-tmux", "echo 'no server running on " + path + "' >&2; exit 1");

    TmuxFacts f = SystemTmuxProbe(TmuxServer{"", path}, 3s, script).query();
    EXPECT_EQ(f.state, TmuxState::unknown) << f.detail;
    EXPECT_NE(f.detail.find("accepts connections"), std::string::npos) << f.detail;
    // Its backlog full, it still listens: the same.
    const int client = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un addr = unix_address(path);
    (void)::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    f = SystemTmuxProbe(TmuxServer{"", path}, 3s, script).query();
    EXPECT_EQ(f.state, TmuxState::unknown) << f.detail;
    ::close(client);

    // Once nothing listens, the words are the socket's state.
    ::close(fd);
    f = SystemTmuxProbe(TmuxServer{"", path}, 3s, script).query();
    EXPECT_EQ(f.state, TmuxState::no_server) << f.detail;
}

// An answer says which server gave it (for logs) and, when it lists, when it was read: tmux's own
// times cannot be later than that.
TEST(TmuxProbe, AnAnswerSaysWhichServerGaveItAndWhenItWasRead) {
    TmuxServerFixture server;
    server.new_session("now");
    const auto before = std::chrono::system_clock::now();
    TmuxFacts f = probe_for(server).query();
    const auto after = std::chrono::system_clock::now();
    ASSERT_EQ(f.state, TmuxState::ok) << f.detail;
    EXPECT_EQ(f.server, "-L " + server.socket_name());
    ASSERT_TRUE(f.listed_at);
    EXPECT_GE(*f.listed_at, before);
    EXPECT_LE(*f.listed_at, after);
    ASSERT_TRUE(f.server_started);
    EXPECT_LE(*f.server_started, *f.listed_at);
    EXPECT_LE(f.sessions.begin()->second.created.value(), *f.listed_at);

    TmuxServerFixture never_started;
    TmuxFacts g = probe_for(never_started).query();
    EXPECT_EQ(g.state, TmuxState::unknown);
    EXPECT_EQ(g.server, "-L " + never_started.socket_name());
    EXPECT_FALSE(g.listed_at);
    EXPECT_EQ(SystemTmuxProbe(TmuxServer{"", "/x/y.sock"}).query().server, "-S /x/y.sock");
}

// A socket that does not exist is what a wrong -L name or -S path looks like. tmux says
// "error connecting to ... (No such file or directory)"; that is not proof of "no sessions".
TEST(TmuxProbe, MissingSocketIsUnknown) {
    TmuxServerFixture never_started;
    TmuxFacts f = probe_for(never_started).query();
    EXPECT_EQ(f.state, TmuxState::unknown) << f.detail;
    EXPECT_NE(f.detail.find("No such file or directory"), std::string::npos) << f.detail;

    TempDir dir;
    TmuxFacts g = SystemTmuxProbe(TmuxServer{"", dir.sub("no/such/dir/sock")}).query();
    EXPECT_EQ(g.state, TmuxState::unknown) << g.detail;
}

// A regular file or a directory at the -S path makes tmux say "no server running" too
// (connect() gets ECONNREFUSED), but that is a misconfiguration, not an ended server.
TEST(TmuxProbe, NoServerMessageForSomethingThatIsNotASocketIsUnknown) {
    TempDir dir;
    test::write_file(dir.sub("regular"), "");
    TmuxFacts f = SystemTmuxProbe(TmuxServer{"", dir.sub("regular")}).query();
    EXPECT_EQ(f.state, TmuxState::unknown) << f.detail;
    EXPECT_NE(f.detail.find("not a socket"), std::string::npos) << f.detail;

    test::make_dirs(dir.sub("a-directory"));
    TmuxFacts g = SystemTmuxProbe(TmuxServer{"", dir.sub("a-directory")}).query();
    EXPECT_EQ(g.state, TmuxState::unknown) << g.detail;
}

// A server with no sessions (exit-empty off) answers: the listing is complete and empty.
TEST(TmuxProbe, ServerWithoutSessionsIsOkAndEmpty) {
    TmuxServerFixture server;
    ASSERT_EQ(server.tmux("start-server \\; set -g exit-empty off").status, 0);
    server.new_session("brief");
    server.kill_session("brief");
    TmuxFacts f = probe_for(server).query();
    EXPECT_EQ(f.state, TmuxState::ok) << f.detail;
    EXPECT_TRUE(f.session_names.empty());
    EXPECT_TRUE(f.session_ids.empty());
    EXPECT_TRUE(f.pane_ids.empty());
}

// Permission denied on the socket is unknown, never "no sessions".
TEST(TmuxProbe, PermissionDeniedIsUnknown) {
    if (::geteuid() != 0) {
        GTEST_SKIP() << "needs root to fork a child that drops to uid 65534 (root ignores "
                        "socket permissions)";
    }
    TmuxServerFixture server;
    server.new_session("private");
    SystemTmuxProbe probe(TmuxServer{"", server.socket_path()});
    std::string r = query_as_nobody(probe);
    if (r.rfind("nodrop", 0) == 0) {
        GTEST_SKIP() << "could not drop privileges: " << r;
    }
    EXPECT_EQ(r.substr(0, r.find('\n')), "unknown") << r;
    EXPECT_NE(r.find("Permission denied"), std::string::npos) << r;
}

// tmux 3.3a exits 0 with "access not allowed" on stderr and nothing on stdout when a reachable
// server of another user refuses the client: an empty listing that must not pass for one.
TEST(TmuxProbe, AccessNotAllowedWithExitZeroIsUnknown) {
    if (::geteuid() != 0) {
        GTEST_SKIP() << "needs root to fork a child that drops to uid 65534";
    }
    TempDir dir;
    ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
    SocketPathServer server(dir.sub("shared.sock"));
    ASSERT_EQ(server.tmux("new-session -d -s shared 'sleep 100000'").status, 0);
    ASSERT_EQ(::chmod(server.path().c_str(), 0666), 0);
    SystemTmuxProbe probe(TmuxServer{"", server.path()});
    std::string r = query_as_nobody(probe);
    if (r.rfind("nodrop", 0) == 0) {
        GTEST_SKIP() << "could not drop privileges: " << r;
    }
    EXPECT_EQ(r.substr(0, r.find('\n')), "unknown") << r;
    EXPECT_NE(r.find("access not allowed"), std::string::npos) << r;
}

TEST(TmuxProbe, UnsafeSocketDirectoryIsUnknown) {
    TempDir tmpdir;
    const std::string dir = tmpdir.sub("tmux-" + std::to_string(::getuid()));
    test::make_dirs(dir);
    ASSERT_EQ(::chmod(dir.c_str(), 0777), 0);
    // The probe passes the environment on, so TMUX_TMPDIR decides where -L sockets live.
    const char* old = std::getenv("TMUX_TMPDIR");
    std::string saved = old != nullptr ? old : "";
    ASSERT_EQ(::setenv("TMUX_TMPDIR", tmpdir.path().c_str(), 1), 0);
    TmuxFacts f = SystemTmuxProbe(TmuxServer{"anything", ""}).query();
    if (old != nullptr) {
        ::setenv("TMUX_TMPDIR", saved.c_str(), 1);
    } else {
        ::unsetenv("TMUX_TMPDIR");
    }
    EXPECT_EQ(f.state, TmuxState::unknown) << f.detail;
    EXPECT_NE(f.detail.find("unsafe permissions"), std::string::npos) << f.detail;
}

TEST(TmuxProbe, MissingBinaryIsUnknown) {
    TmuxFacts f = SystemTmuxProbe(TmuxServer{"x", ""}, 3s, "/nonexistent/tmux").query();
    EXPECT_EQ(f.state, TmuxState::unknown);
    EXPECT_NE(f.detail.find("tmux not found"), std::string::npos) << f.detail;
    EXPECT_NE(f.detail.find("/nonexistent/tmux"), std::string::npos) << f.detail;
    // posix_spawn reaped the child whose exec failed: no zombie left behind.
    errno = 0;
    EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
    EXPECT_EQ(errno, ECHILD);
}

TEST(TmuxProbe, BinaryNotInPathIsUnknown) {
    TmuxFacts f = SystemTmuxProbe(TmuxServer{"x", ""}, 3s, "agentlock-no-such-tmux-binary").query();
    EXPECT_EQ(f.state, TmuxState::unknown);
    EXPECT_NE(f.detail.find("tmux not found"), std::string::npos) << f.detail;
}

// --- stand-in binaries ------------------------------------------------------------------------

bool is_dead_or_zombie(pid_t pid) {
    if (::kill(pid, 0) != 0 && errno == ESRCH) {
        return true;
    }
    std::string stat;
    try {
        stat = test::read_file("/proc/" + std::to_string(pid) + "/stat");
    } catch (const std::exception&) {
        return true;
    }
    auto close = stat.rfind(')');
    return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z';
}

// A hung tmux is killed at the deadline, with everything it started, and reaped.
TEST(TmuxProbe, TimeOutKillsAndReapsTheChild) {
    TempDir dir;
    const std::string pid_file = dir.sub("grandchild.pid");
    const std::string script =
        write_script(dir, "hung-tmux", "sleep 10 &\necho $! > '" + pid_file + "'\nwait");
    // Long enough for the script to record its child before the deadline, even on a busy machine.
    SystemTmuxProbe probe(TmuxServer{"x", ""}, 1000ms, script);

    const auto start = std::chrono::steady_clock::now();
    TmuxFacts f = probe.query();
    const auto elapsed = std::chrono::steady_clock::now() - start;

    EXPECT_EQ(f.state, TmuxState::unknown);
    EXPECT_EQ(f.detail, "tmux timed out after 1000 ms");
    // Not a timing assertion: it tells "killed at the deadline" from "waited for sleep 10".
    EXPECT_LT(elapsed, 8s);
    // Reaped: this test process has no child left, not even a zombie.
    errno = 0;
    EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
    EXPECT_EQ(errno, ECHILD);
    // The script's own child went with it (the probe kills the whole process group).
    ASSERT_TRUE(test::exists(pid_file));
    std::string text = trim(test::read_file(pid_file));
    ASSERT_FALSE(text.empty());
    const auto grandchild = static_cast<pid_t>(std::stol(text));
    EXPECT_TRUE(test::wait_until([&] { return is_dead_or_zombie(grandchild); }, 5s));
}

// A child that closes its output but does not exit is still held to the deadline.
TEST(TmuxProbe, TimeOutAfterOutputClosed) {
    TempDir dir;
    const std::string script = write_script(dir, "mute-tmux", "exec >&- 2>&-\nexec sleep 10");
    TmuxFacts f = SystemTmuxProbe(TmuxServer{"x", ""}, 200ms, script).query();
    EXPECT_EQ(f.state, TmuxState::unknown);
    EXPECT_EQ(f.detail, "tmux timed out after 200 ms");
    errno = 0;
    EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
    EXPECT_EQ(errno, ECHILD);
}

TEST(TmuxProbe, ChildGetsDevNullAsStdinAndTheRightArguments) {
    TempDir dir;
    const std::string args_file = dir.sub("args");
    // Prints a valid listing only if its stdin is /dev/null.
    const std::string script = write_script(
        dir, "fake-tmux",
        "printf '%s\\n' \"$@\" > '" + args_file +
            "'\nin=$(readlink /proc/$$/fd/0)\n"
            "if [ \"$in\" != /dev/null ]; then echo \"stdin is $in\" >&2; exit 3; fi\n" +
            printf_line(line("$1", "%7", "fake")));
    // Our own stdin is a pipe for the duration, so inheriting it would show.
    int pipe_fds[2];
    ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
    const int saved_stdin = ::fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
    ASSERT_GE(saved_stdin, 0);
    ASSERT_EQ(::dup2(pipe_fds[0], STDIN_FILENO), STDIN_FILENO);
    TmuxFacts f = SystemTmuxProbe(TmuxServer{"", "/some/path.sock"}, 3s, script).query();
    ASSERT_EQ(::dup2(saved_stdin, STDIN_FILENO), STDIN_FILENO);
    ::close(saved_stdin);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    ASSERT_EQ(f.state, TmuxState::ok) << f.detail;
    EXPECT_TRUE(f.has("fake"));
    EXPECT_TRUE(f.has("$1"));
    EXPECT_TRUE(f.has("%7"));
    EXPECT_EQ(lines_of(test::read_file(args_file)),
              (std::vector<std::string>{"-S", "/some/path.sock", "list-panes", "-a", "-F",
                                        std::string(tmux_listing_format())}));
    EXPECT_EQ(f.socket_path, "/some/path.sock");

    SystemTmuxProbe(TmuxServer{"name", ""}, 3s, script).query();
    EXPECT_EQ(lines_of(test::read_file(args_file))[0], "-L");
    SystemTmuxProbe(TmuxServer{"", ""}, 3s, script).query();
    EXPECT_EQ(lines_of(test::read_file(args_file))[0], "list-panes");
}

struct ExitCase {
    const char* name;
    const char* script;
    TmuxState state;
};

class TmuxExitClassification : public ::testing::TestWithParam<ExitCase> {};

TEST_P(TmuxExitClassification, Table) {
    TempDir dir;
    const std::string script = write_script(dir, "fake-tmux", GetParam().script);
    TmuxFacts f = SystemTmuxProbe(TmuxServer{"x", ""}, 3s, script).query();
    EXPECT_EQ(f.state, GetParam().state) << f.detail;
    if (f.state != TmuxState::ok) {
        EXPECT_FALSE(f.detail.empty());
    }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, TmuxExitClassification,
    ::testing::Values(
        ExitCase{"listing", "printf '$0\\t%%0\\t1\\t0\\t1\\t1\\t1\\ta\\n'", TmuxState::ok},
        ExitCase{"exit0_stderr", "echo 'access not allowed' >&2", TmuxState::unknown},
        ExitCase{"exit0_listing_and_stderr",
                 "printf '$0\\t%%0\\t1\\t0\\t1\\t1\\t1\\ta\\n'; echo oops >&2", TmuxState::unknown},
        ExitCase{"exit0_nothing", "exit 0", TmuxState::unknown},
        ExitCase{"exit0_garbage", "echo 'sessions: 3'", TmuxState::unknown},
        ExitCase{"exit1_silent", "exit 1", TmuxState::unknown},
        ExitCase{"killed_by_signal", "kill -TERM $$", TmuxState::unknown},
        ExitCase{"no_server_on_missing_path",
                 "echo 'no server running on /nonexistent/agentlock.sock' >&2; exit 1",
                 TmuxState::unknown},
        ExitCase{"no_server_then_more",
                 "echo 'no server running on /dev/null' >&2; echo more >&2; exit 1",
                 TmuxState::unknown},
        ExitCase{"enoent",
                 "echo 'error connecting to /tmp/x (No such file or directory)' >&2; "
                 "exit 1",
                 TmuxState::unknown},
        ExitCase{"no_current_target", "echo 'no current target' >&2; exit 1", TmuxState::ok},
        ExitCase{"huge_output", "head -c 17000000 /dev/zero", TmuxState::unknown},
        ExitCase{"server_exited", "echo 'server exited unexpectedly' >&2; exit 1",
                 TmuxState::unknown}),
    [](const ::testing::TestParamInfo<ExitCase>& p) { return std::string(p.param.name); });

// --- parse_tmux_listing
// ---------------------------------------------------------------------------

TEST(ParseTmuxListing, NamesWithColonsSpacesAndTabsEscapedByTmux) {
    TmuxFacts f = parse_tmux_listing(
        line("$0", "%0", "gt-rig-w01").text() + line("$0", "%3", "gt-rig-w01").text() +
        line("$2", "%5", "name with spaces: and colon").text() + line("$4", "%6", "a\\tb").text());
    ASSERT_EQ(f.state, TmuxState::ok) << f.detail;
    EXPECT_EQ(f.session_names,
              (std::set<std::string>{"gt-rig-w01", "name with spaces: and colon", "a\\tb"}));
    EXPECT_EQ(f.session_ids, (std::set<std::string>{"$0", "$2", "$4"}));
    EXPECT_EQ(f.pane_ids, (std::set<std::string>{"%0", "%3", "%5", "%6"}));
}

TEST(ParseTmuxListing, SessionsPanesAndTheServerWithTheirTimes) {
    Line a = line("$1", "%1", "one");
    a.created = "1700000500";
    a.pane_pid = "101";
    Line b = line("$1", "%2", "one");
    b.created = "1700000500";
    b.pane_pid = "102";
    b.dead = "1";
    Line c = line("$7", "%9", "two");
    c.created = "1700000900";
    c.dead = "1";
    TmuxFacts f = parse_tmux_listing(a.text() + b.text() + c.text());
    ASSERT_EQ(f.state, TmuxState::ok) << f.detail;
    EXPECT_EQ(f.server_started, Timestamp(std::chrono::seconds(1700000000)));
    EXPECT_EQ(f.server_pid, 4000);
    ASSERT_EQ(f.sessions.size(), 2u);
    const TmuxSession& one = f.sessions.at("$1");
    EXPECT_EQ(one.name, "one");
    EXPECT_EQ(one.created, Timestamp(std::chrono::seconds(1700000500)));
    EXPECT_EQ(one.panes, 2u);
    EXPECT_EQ(one.dead_panes, 1u);
    EXPECT_EQ(one.unread_panes, 0u);
    EXPECT_EQ(f.sessions.at("$7").dead_panes, 1u);
    ASSERT_EQ(f.panes.size(), 3u);
    EXPECT_EQ(f.panes.at("%2").pid, 102);
    EXPECT_EQ(f.panes.at("%2").dead, true);
    EXPECT_EQ(f.panes.at("%1").dead, false);
    EXPECT_EQ(f.panes.at("%9").session_id, "$7");
}

// What a lock held by a pane or a session waits on: the server's process and its panes'.
TEST(TmuxHoldPids, TheServerAndThePaneOrEveryPaneOfTheSession) {
    Line a = line("$1", "%1", "one");
    a.pane_pid = "101";
    Line b = line("$1", "%2", "one");
    b.pane_pid = "102";
    Line c = line("$7", "%9", "two");
    c.pane_pid = "109";
    const TmuxFacts f = parse_tmux_listing(a.text() + b.text() + c.text());
    ASSERT_EQ(f.state, TmuxState::ok) << f.detail;
    using Pids = std::vector<std::int64_t>;
    EXPECT_EQ(tmux_hold_pids(f, "%2"), (Pids{102, 4000}));
    EXPECT_EQ(tmux_hold_pids(f, "$1"), (Pids{101, 102, 4000}));
    EXPECT_EQ(tmux_hold_pids(f, "two"), (Pids{109, 4000}));
    EXPECT_EQ(tmux_hold_pids(f, "%5"), (Pids{4000})) << "not listed: the server only";
    EXPECT_TRUE(tmux_hold_pids(parse_tmux_listing("garbage"), "%1").empty())
        << "no ok answer, nothing to watch";
}

// A tmux that does not know a variable prints nothing for it: the fact is unset, not invented.
TEST(ParseTmuxListing, EmptyFieldsLeaveFactsUnset) {
    Line l = line("$1", "%1", "one");
    l.pane_pid = "";
    l.dead = "";
    l.created = "";
    l.started = "";
    l.server_pid = "";
    TmuxFacts f = parse_tmux_listing(l.text());
    ASSERT_EQ(f.state, TmuxState::ok) << f.detail;
    EXPECT_FALSE(f.server_started);
    EXPECT_FALSE(f.server_pid);
    EXPECT_FALSE(f.sessions.at("$1").created);
    EXPECT_EQ(f.sessions.at("$1").unread_panes, 1u);
    EXPECT_FALSE(f.panes.at("%1").pid);
    EXPECT_FALSE(f.panes.at("%1").dead);
}

// A linked window lists its pane once in each session it is linked into, the same pane each time.
TEST(ParseTmuxListing, ALinkedWindowListsItsPaneInEachSession) {
    TmuxFacts f =
        parse_tmux_listing(line("$1", "%1", "ok").text() + line("$2", "%1", "other").text());
    ASSERT_EQ(f.state, TmuxState::ok) << f.detail;
    EXPECT_EQ(f.panes.size(), 1u);
    EXPECT_EQ(f.panes.at("%1").session_id, "$1");
    EXPECT_EQ(f.sessions.at("$2").panes, 1u);
    EXPECT_TRUE(f.has_live("other"));
}

TEST(ParseTmuxListing, CarriageReturnsAndEmptyLines) {
    std::string one = line("$1", "%1", "one").text();
    std::string two = line("$2", "%9", "two").text();
    one.insert(one.size() - 1, "\r");
    two.insert(two.size() - 1, "\r");
    TmuxFacts f = parse_tmux_listing("\n" + one + "\r\n\n" + two);
    ASSERT_EQ(f.state, TmuxState::ok) << f.detail;
    EXPECT_EQ(f.session_names, (std::set<std::string>{"one", "two"}));
    EXPECT_EQ(f.pane_ids, (std::set<std::string>{"%1", "%9"}));
}

TEST(ParseTmuxListing, LastLineWithoutNewline) {
    std::string two = line("$2", "%2", "two").text();
    two.pop_back();
    TmuxFacts f = parse_tmux_listing(line("$1", "%1", "one").text() + two);
    ASSERT_EQ(f.state, TmuxState::ok);
    EXPECT_TRUE(f.has("two"));
}

TEST(ParseTmuxListing, EmptyOutputIsOkAndEmpty) {
    TmuxFacts f = parse_tmux_listing("");
    EXPECT_EQ(f.state, TmuxState::ok);
    EXPECT_TRUE(f.session_names.empty());
}

// A session may be named like an id: it matches by name, and only its own id matches as an id.
TEST(ParseTmuxListing, SessionNamedLikeAnId) {
    TmuxFacts f = parse_tmux_listing(line("$3", "%8", "%1").text());
    ASSERT_EQ(f.state, TmuxState::ok);
    EXPECT_TRUE(f.has("%1"));  // by name
    EXPECT_TRUE(f.has("$3"));  // by session id
    EXPECT_TRUE(f.has("%8"));  // by pane id
    EXPECT_FALSE(f.has("%3")); // never $3 aliased to %3
    EXPECT_FALSE(f.has("$8")); // nor %8 to $8
}

struct BadListing {
    const char* name;
    std::string text;
};

class ParseTmuxListingRejects : public ::testing::TestWithParam<BadListing> {};

// A listing we cannot fully read must not pass for a complete one: unknown, never ok.
TEST_P(ParseTmuxListingRejects, Table) {
    TmuxFacts f = parse_tmux_listing(GetParam().text);
    EXPECT_EQ(f.state, TmuxState::unknown);
    EXPECT_FALSE(f.detail.empty());
    EXPECT_TRUE(f.session_names.empty());
    EXPECT_TRUE(f.sessions.empty());
}

Line with(Line l, std::string Line::*field, std::string value) {
    l.*field = std::move(value);
    return l;
}

const Line k_good = line("$1", "%1", "ok");

INSTANTIATE_TEST_SUITE_P(
    Cases, ParseTmuxListingRejects,
    ::testing::Values(
        BadListing{"one_field", "$1\n"}, BadListing{"two_fields", "$1\t%1\n"},
        BadListing{"three_fields_old_format", "$1\t%1\tname\n"},
        BadListing{"empty_name", with(k_good, &Line::name, "").text()},
        BadListing{"swapped_ids",
                   with(with(k_good, &Line::session, "%1"), &Line::pane, "$1").text()},
        BadListing{"bare_sigils", with(with(k_good, &Line::session, "$"), &Line::pane, "%").text()},
        BadListing{"non_numeric_id", with(k_good, &Line::session, "$a").text()},
        BadListing{"old_format", "gt-rig-w01:$0\n"},
        BadListing{"good_then_bad", k_good.text() + "no server running\n"},
        BadListing{"pane_pid_text", with(k_good, &Line::pane_pid, "pid").text()},
        BadListing{"pane_pid_zero", with(k_good, &Line::pane_pid, "0").text()},
        BadListing{"pane_dead_yes", with(k_good, &Line::dead, "yes").text()},
        BadListing{"pane_dead_2", with(k_good, &Line::dead, "2").text()},
        BadListing{"created_negative", with(k_good, &Line::created, "-5").text()},
        BadListing{"created_fraction", with(k_good, &Line::created, "1700000000.5").text()},
        BadListing{"created_beyond_2262", with(k_good, &Line::created, "99999999999").text()},
        BadListing{"start_time_text", with(k_good, &Line::started, "yesterday").text()},
        BadListing{"server_pid_text", with(k_good, &Line::server_pid, "x").text()},
        BadListing{"two_servers",
                   k_good.text() + with(line("$2", "%2", "b"), &Line::started, "1").text()},
        BadListing{"one_session_two_times",
                   k_good.text() + with(line("$1", "%2", "ok"), &Line::created, "1").text()},
        BadListing{"one_pane_dead_and_alive",
                   with(line("$2", "%1", "ghost"), &Line::dead, "1").text() + k_good.text()},
        BadListing{"one_pane_two_pids",
                   k_good.text() + with(line("$2", "%1", "ghost"), &Line::pane_pid, "99").text()},
        BadListing{"one_pane_state_read_once",
                   k_good.text() + with(line("$2", "%1", "ghost"), &Line::dead, "").text()}),
    [](const ::testing::TestParamInfo<BadListing>& p) { return std::string(p.param.name); });

TEST(TmuxStateNames, ToString) {
    EXPECT_EQ(to_string(TmuxState::ok), "ok");
    EXPECT_EQ(to_string(TmuxState::no_server), "no-server");
    EXPECT_EQ(to_string(TmuxState::unknown), "unknown");
}

} // namespace
} // namespace agentlock
