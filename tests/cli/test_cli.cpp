// End-to-end tests of the agentlock command: the real binary ($AGENTLOCK), real processes, a
// real tmux server on a private socket, the Go peer of tests/interop, and the real agentlockd
// to compare verdicts with.

#include "e2e_support.hpp"
#include "test_support.hpp"

#include <agentlock/fd.hpp>

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <map>
#include <sstream>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace agentlock {
namespace {

using namespace std::chrono_literals;
using test::Child;
using test::exists;
using test::read_file;
using test::TempDir;
using test::wait_until;
using test::write_file;

// The binary under test: $AGENTLOCK, else the one this build made.
std::string agentlock_path() {
    const char* path = std::getenv("AGENTLOCK");
    return path != nullptr && *path != '\0' ? path : AGENTLOCK_CLI;
}

// A started agentlock with stdout and stderr in files.
struct Started {
    Child child;
    std::string out_path;
    std::string err_path;
};

Started start(const TempDir& dir, const std::vector<std::string>& args,
              const std::vector<std::string>& env = {}) {
    static int counter = 0;
    Started s;
    const std::string base = dir.sub("agentlock-" + std::to_string(++counter));
    s.out_path = base + ".out";
    s.err_path = base + ".err";
    std::vector<std::string> argv = {agentlock_path()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<std::string> envs;
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string_view kv(*e);
        if (kv.rfind("TMUX", 0) != 0 && kv.rfind("XDG_CONFIG_HOME=", 0) != 0) {
            envs.emplace_back(kv); // no tmux of the caller's, no user config of the caller's
        }
    }
    envs.push_back("XDG_CONFIG_HOME=" + dir.sub("xdg"));
    envs.insert(envs.end(), env.begin(), env.end());
    const pid_t pid = ::fork();
    if (pid < 0) {
        throw std::runtime_error("fork failed");
    }
    if (pid == 0) {
        const int out = ::open(s.out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        const int err = ::open(s.err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (out < 0 || err < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) {
            ::_exit(120);
        }
        std::vector<char*> a;
        for (auto& x : argv) {
            a.push_back(x.data());
        }
        a.push_back(nullptr);
        std::vector<char*> e;
        for (auto& x : envs) {
            e.push_back(x.data());
        }
        e.push_back(nullptr);
        ::execve(a[0], a.data(), e.data());
        ::_exit(121);
    }
    s.child = Child(pid);
    return s;
}

struct Ran {
    bool exited = false;
    int code = -1;
    int signal = 0;
    std::string out;
    std::string err;
    std::string describe() const {
        return (exited ? "exit " + std::to_string(code) : "signal " + std::to_string(signal)) +
               "\nstdout: " + out + "\nstderr: " + err;
    }
};

// Waits for a started agentlock to end (SIGKILL after `timeout`).
Ran finish(Started& s, std::chrono::milliseconds timeout = 20s) {
    Ran r;
    int status = 0;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        const pid_t got = ::waitpid(s.child.pid(), &status, WNOHANG);
        if (got == s.child.pid()) {
            s.child.release();
            break;
        }
        if (std::chrono::steady_clock::now() > deadline) {
            s.child.kill_and_reap();
            r.err = "timed out";
            return r;
        }
        std::this_thread::sleep_for(5ms);
    }
    r.exited = WIFEXITED(status);
    r.code = r.exited ? WEXITSTATUS(status) : -1;
    r.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    r.out = read_file(s.out_path);
    r.err = read_file(s.err_path);
    return r;
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

bool process_alive(pid_t pid) {
    if (::kill(pid, 0) != 0) {
        return false;
    }
    // A zombie is not running.
    const char state = test::process_state(pid);
    return state != '\0' && state != 'Z';
}

long long lock_pid(const std::string& lock_path) {
    const auto doc = boost::json::parse(read_file(lock_path)).as_object();
    return doc.at("pid").as_int64();
}

class Cli : public ::testing::Test, public e2e::WorkerRoot {
protected:
    void SetUp() override {
        m_root = e2e::real_path(m_tmp.path()) + "/root";
        test::make_dirs(m_root);
    }
    void TearDown() override {
        for (pid_t pid : m_strays) {
            (void)::kill(pid, SIGKILL); // CMDs reparented when their agentlock was killed
        }
        if (m_tmux) {
            const std::string socket = m_tmux->socket_path();
            m_tmux.reset(); // kills the server
            (void)::unlink(socket.c_str());
            EXPECT_FALSE(exists(socket)) << "tmux socket left behind: " << socket;
        }
    }
    Ran agentlock(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 20s,
                  const std::vector<std::string>& env = {}) {
        Started s = start(m_tmp, args, env);
        return finish(s, timeout);
    }
    std::string make_worker(const std::string& name) {
        test::make_dirs(worker(name));
        return worker(name);
    }
    test::TmuxServerFixture& tmux() {
        if (!m_tmux) {
            m_tmux = std::make_unique<test::TmuxServerFixture>();
        }
        return *m_tmux;
    }

    TempDir m_tmp;
    std::unique_ptr<test::TmuxServerFixture> m_tmux;
    std::vector<pid_t> m_strays;
};

// ---------------------------------------------------------------------------------------------
// run

TEST_F(Cli, RunPassesCmdsExitCodeThroughAndReleases) {
    const std::string w = make_worker("w");
    const std::string seen = m_tmp.sub("seen");
    // CMD sees its own lock, naming its own pid.
    Ran r = agentlock({"run", w, "--", "sh", "-c", "cat \"$1\" > \"$2\"; echo $$ >> \"$2\"; exit 7",
                       "sh", lock_path("w"), seen});
    EXPECT_EQ(r.code, 7) << r.describe();
    const std::string text = read_file(seen);
    const auto doc = boost::json::parse(text.substr(0, text.rfind('}') + 1)).as_object();
    EXPECT_EQ(std::to_string(doc.at("pid").as_int64()) + "\n", text.substr(text.rfind('}') + 1))
        << "the lock must name CMD's pid: " << text;
    EXPECT_FALSE(exists(lock_path("w"))) << "released when CMD ended";

    r = agentlock({"run", w, "--", "true"});
    EXPECT_EQ(r.code, 0) << r.describe();
    r = agentlock({"run", w, "--", "/nonexistent/cmd"});
    EXPECT_EQ(r.code, 127) << r.describe();
    EXPECT_TRUE(contains(r.err, "/nonexistent/cmd")) << r.err;
    EXPECT_FALSE(exists(lock_path("w")));
    r = agentlock({"run", w, "--", "sh", "-c", "kill -USR1 $$"});
    EXPECT_EQ(r.code, 128 + SIGUSR1) << r.describe();
    EXPECT_FALSE(exists(lock_path("w")));
}

TEST_F(Cli, RunKilledWhileCmdLivesLeavesALiveLockTheDaemonKeeps) {
    const std::string w = make_worker("w");
    Started s = start(m_tmp, {"run", "--session", "", w, "--", "sleep", "1000"});
    ASSERT_TRUE(wait_until([&] { return exists(lock_path("w")); })) << read_file(s.err_path);
    const auto cmd = static_cast<pid_t>(lock_pid(lock_path("w")));
    m_strays.push_back(cmd);
    EXPECT_NE(cmd, s.child.pid()) << "the lock must name CMD, not agentlock";
    ASSERT_TRUE(wait_until([&] {
        return read_file("/proc/" + std::to_string(cmd) + "/comm") == "sleep\n";
    })) << "CMD runs once its lock is written";

    s.child.kill_and_reap(); // SIGKILL: no chance to release
    EXPECT_TRUE(process_alive(cmd));
    ASSERT_TRUE(exists(lock_path("w")));
    const e2e::RunResult d =
        e2e::run_daemon(m_tmp.path(), {"--once", "--json", "--root", m_root, "--log-level", "error",
                                       "--tmux-socket", "agentlock-cli-none"});
    ASSERT_TRUE(d.status.exited && d.status.code == 0) << d.status.describe() << d.err;
    const auto entry = e2e::lock_entry(boost::json::parse(d.out).as_object(), lock_path("w"));
    ASSERT_TRUE(entry) << d.out;
    EXPECT_EQ(e2e::str_or(*entry, "verdict"), "live") << d.out;
    EXPECT_EQ(e2e::str_or(*entry, "action"), "kept") << d.out;
    EXPECT_TRUE(exists(lock_path("w"))) << "the daemon (not a dry run) kept CMD's lock";

    // Once CMD is gone the lock is stale, and only then.
    ::kill(cmd, SIGKILL);
    ASSERT_TRUE(wait_until([&] { return !process_alive(cmd); }));
    Ran why = agentlock({"why", w, "--tmux-socket", "agentlock-cli-none"});
    EXPECT_TRUE(contains(why.out, ": stale")) << why.describe();
}

TEST_F(Cli, RunForwardsSignalsToCmd) {
    const std::string w = make_worker("w");
    const std::string ready = m_tmp.sub("ready");
    // A CMD that turns SIGTERM into exit 42 (the loop lets the trap run promptly).
    Started s = start(m_tmp, {"run", w, "--", "sh", "-c",
                              "trap 'exit 42' TERM; touch \"$1\"; while :; do sleep 0.05; done",
                              "sh", ready});
    ASSERT_TRUE(wait_until([&] { return exists(ready); })) << read_file(s.err_path);
    ASSERT_EQ(::kill(s.child.pid(), SIGTERM), 0);
    Ran r = finish(s);
    EXPECT_EQ(r.code, 42) << r.describe();
    EXPECT_FALSE(exists(lock_path("w")));

    for (int sig : {SIGINT, SIGHUP, SIGTERM}) {
        Started t = start(m_tmp, {"run", w, "--", "sleep", "1000"});
        ASSERT_TRUE(wait_until([&] { return exists(lock_path("w")); }));
        const auto cmd = static_cast<pid_t>(lock_pid(lock_path("w")));
        m_strays.push_back(cmd);
        ASSERT_TRUE(wait_until(
            [&] { return read_file("/proc/" + std::to_string(cmd) + "/comm") == "sleep\n"; }));
        ASSERT_EQ(::kill(t.child.pid(), sig), 0);
        Ran u = finish(t);
        EXPECT_EQ(u.code, 128 + sig) << "signal " << sig << ": " << u.describe();
        EXPECT_FALSE(process_alive(cmd)) << "signal " << sig << " reached CMD";
        EXPECT_FALSE(exists(lock_path("w")));
    }
}

TEST_F(Cli, RunNoWaitAndWait) {
    const std::string w = make_worker("w");
    Child holder = test::spawn_sleeper();
    put_live("w", holder);
    const std::string before = read_file(lock_path("w"));
    const std::string marker = m_tmp.sub("ran");

    // Held by a live agent: kept, never taken over.
    for (const std::vector<std::string>& extra :
         {std::vector<std::string>{"--no-wait"}, std::vector<std::string>{}}) {
        std::vector<std::string> args = {"run"};
        args.insert(args.end(), extra.begin(), extra.end());
        for (const char* a : {"--tmux-socket", "agentlock-cli-none"}) {
            args.emplace_back(a);
        }
        args.insert(args.end(), {w, "--", "touch", marker});
        Ran r = agentlock(args);
        EXPECT_EQ(r.code, 75) << r.describe();
        EXPECT_TRUE(contains(r.err, "PID " + std::to_string(holder.pid()))) << r.err;
        EXPECT_FALSE(exists(marker)) << "CMD must not run without the lock";
        EXPECT_EQ(read_file(lock_path("w")), before);
    }

    // --wait gives up after DUR.
    const auto t0 = std::chrono::steady_clock::now();
    Ran r = agentlock({"run", "--wait", "400ms", "--tmux-socket", "agentlock-cli-none", w, "--",
                       "touch", marker});
    EXPECT_EQ(r.code, 75) << r.describe();
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 400ms);
    EXPECT_TRUE(contains(r.err, "gave up after 400ms")) << r.err;
    EXPECT_FALSE(exists(marker));

    // --wait takes the lock once the holder is gone.
    Started s = start(m_tmp, {"run", "--wait", "20s", "--session", "", "--tmux-socket",
                              "agentlock-cli-none", w, "--", "touch", marker});
    std::this_thread::sleep_for(300ms); // let it retry a few times against the live holder
    EXPECT_FALSE(exists(marker));
    holder.kill_and_reap();
    Ran waited = finish(s);
    EXPECT_EQ(waited.code, 0) << waited.describe();
    EXPECT_TRUE(exists(marker));
    EXPECT_FALSE(exists(lock_path("w")));

    Ran both = agentlock({"run", "--wait", "1s", "--no-wait", w, "--", "true"});
    EXPECT_EQ(both.code, 1) << both.describe();
    Ran bad = agentlock({"run", "--wait", "soon", w, "--", "true"});
    EXPECT_EQ(bad.code, 1) << bad.describe();
    EXPECT_TRUE(contains(bad.err, "--wait")) << bad.err;
}

// The Go peer of tests/interop, built once into the build tree; empty when Go is missing.
std::string go_peer(std::string& error) {
    static std::string binary;
    static std::string build_error;
    static bool tried = false;
    if (!tried) {
        tried = true;
        std::string go;
        for (const char* candidate :
             {"/usr/bin/go", "/usr/lib/go/bin/go", "/usr/local/go/bin/go"}) {
            if (::access(candidate, X_OK) == 0) {
                go = candidate;
                break;
            }
        }
        if (!go.empty()) {
            char exe[4096] = {};
            const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
            std::string dir = std::string(exe, n > 0 ? static_cast<std::size_t>(n) : 0);
            dir = dir.substr(0, dir.find_last_of('/')) + "/go-peer";
            test::make_dirs(dir);
            const std::string out = dir + "/agentlock-interop";
            const std::string tmp = out + ".tmp." + std::to_string(::getpid());
            const auto r = test::run_command(
                "cd " AGENTLOCK_GO_SOURCE_DIR " && GOCACHE='" + dir + "/cache' GOPATH='" + dir +
                "/gopath' GOENV=off GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local "
                "GO111MODULE=on CGO_ENABLED=0 " +
                go + " build -trimpath -o '" + tmp + "' . 2>&1 && mv '" + tmp + "' '" + out + "'");
            if (r.status == 0) {
                binary = out;
            } else {
                build_error = "go build failed: " + r.out;
            }
        }
    }
    error = build_error;
    return binary;
}

TEST_F(Cli, RunIsBlockedByAGoHolder) {
    std::string error;
    const std::string peer = go_peer(error);
    if (peer.empty() && error.empty()) {
        GTEST_SKIP() << "Go toolchain not found: install golang-go";
    }
    ASSERT_FALSE(peer.empty()) << error;
    const std::string w = make_worker("w");
    test::make_dirs(runtime("w"));
    Child go = test::spawn({peer, "hold", lock_path("w"), "", test::local_hostname()});
    ASSERT_TRUE(
        wait_until([&] { return exists(lock_path("w")) && !read_file(lock_path("w")).empty(); }));
    ASSERT_TRUE(wait_until([&] {
        try {
            return lock_pid(lock_path("w")) == go.pid();
        } catch (...) {
            return false;
        }
    }));
    const std::string before = read_file(lock_path("w"));
    const std::string marker = m_tmp.sub("ran");
    Ran r = agentlock({"run", "--no-wait", w, "--", "touch", marker});
    EXPECT_EQ(r.code, 75) << r.describe();
    EXPECT_TRUE(contains(r.err, "PID " + std::to_string(go.pid()))) << r.err;
    EXPECT_TRUE(contains(r.err, "session (none)")) << r.err;
    EXPECT_TRUE(contains(r.err, "host " + test::local_hostname())) << r.err;
    EXPECT_TRUE(contains(r.err, "since ")) << r.err;
    EXPECT_FALSE(exists(marker));
    EXPECT_EQ(read_file(lock_path("w")), before);

    go.kill_and_reap();
    r = agentlock({"run", "--no-wait", w, "--", "touch", marker});
    EXPECT_EQ(r.code, 0) << r.describe() << "a dead Go holder's lock is stale and taken over";
    EXPECT_TRUE(exists(marker));
}

// ---------------------------------------------------------------------------------------------
// acquire, release, check, status, force-release

TEST_F(Cli, AcquireReleaseCheckStatusForceRelease) {
    const std::string w = make_worker("w");
    Child owner = test::spawn_sleeper();
    const std::string pid = std::to_string(owner.pid());
    Ran r = agentlock({"acquire", "--pid", pid, "--session", "%3", w});
    ASSERT_EQ(r.code, 0) << r.describe();
    EXPECT_EQ(lock_pid(lock_path("w")), owner.pid());
    const std::string held = read_file(lock_path("w"));

    r = agentlock({"release", w}); // as the test process: not the owner
    EXPECT_EQ(r.code, 77) << r.describe();
    EXPECT_TRUE(contains(r.err, "PID " + pid)) << r.err;
    EXPECT_EQ(read_file(lock_path("w")), held);

    r = agentlock({"status", w, "--tmux-socket", "agentlock-cli-none"});
    EXPECT_EQ(r.code, 0) << r.describe();
    EXPECT_EQ(r.out, "locked by PID " + pid + " (session: %3)\n");
    r = agentlock({"status", "--json", w});
    const auto doc = boost::json::parse(r.out).as_object();
    EXPECT_EQ(doc.at("pid").as_int64(), owner.pid());
    EXPECT_EQ(doc.at("session_id").as_string(), "%3");

    r = agentlock({"check", w, "--tmux-socket", "agentlock-cli-none"});
    EXPECT_EQ(r.code, 75) << r.describe();
    r = agentlock({"force-release", w, "--tmux-socket", "agentlock-cli-none"});
    EXPECT_EQ(r.code, 75) << r.describe() << "an unknown verdict may be a running agent";
    EXPECT_EQ(read_file(lock_path("w")), held);

    r = agentlock({"release", "--pid", pid, w});
    EXPECT_EQ(r.code, 0) << r.describe();
    EXPECT_FALSE(exists(lock_path("w")));
    r = agentlock({"check", w});
    EXPECT_EQ(r.code, 0) << r.describe();

    put_lock("w", test::go_lock_json(owner.pid(), test::now_rfc3339(), "", "elsewhere"));
    const std::string foreign = read_file(lock_path("w"));
    r = agentlock({"force-release", w});
    EXPECT_EQ(r.code, 0) << r.describe();
    EXPECT_EQ(r.out, foreign + "\n") << "prints the removed lock's content";
    EXPECT_TRUE(contains(r.err, "PID " + pid) && contains(r.err, "foreign")) << r.err;
    EXPECT_FALSE(exists(lock_path("w")));

    r = agentlock({"acquire", "--pid", std::to_string(test::dead_pid()), w});
    EXPECT_EQ(r.code, 1) << r.describe();
    EXPECT_TRUE(contains(r.err, "not running")) << r.err;
}

// ---------------------------------------------------------------------------------------------
// list and why, against the daemon

TEST_F(Cli, ListAndWhyJudgeAsTheDaemonDoes) {
    auto& t = tmux();
    t.new_session("held");
    const std::string pane = t.pane_of("held");
    Child owner = test::spawn_sleeper();
    put_live("live", owner);
    put_stale("stale");
    put_stale("held", pane);
    put_lock("invalid", "{not json");
    put_lock("foreign", test::go_lock_json(owner.pid(), test::now_rfc3339(), "", "other-host"));
    put_live("orphan", owner, "%999999");
    const std::string config = m_tmp.sub("agentlockd.json");
    write_file(config,
               "{\"roots\": [\"" + m_root + "\"], \"tmux_socket\": \"" + t.socket_name() + "\"}");
    std::map<std::string, std::string> before;
    for (const char* name : {"live", "stale", "held", "invalid", "foreign", "orphan"}) {
        before[name] = read_file(lock_path(name));
    }

    const e2e::RunResult d =
        e2e::run_daemon(m_tmp.path(), {"--once", "--json", "--dry-run", "--config", config,
                                       "--log-level", "error"});
    ASSERT_TRUE(d.status.exited && d.status.code == 0) << d.status.describe() << d.err;
    const auto daemon_doc = boost::json::parse(d.out).as_object();

    Ran json = agentlock({"list", "--json", "--config", config});
    ASSERT_EQ(json.code, 0) << json.describe();
    const auto list_doc = boost::json::parse(json.out).as_object();
    Ran table = agentlock({"list", "--config", config});
    ASSERT_EQ(table.code, 0) << table.describe();
    Ran roots = agentlock({"list", "--tmux-socket", t.socket_name(), m_root});
    ASSERT_EQ(roots.code, 0) << roots.describe();

    const std::map<std::string, std::string> expected = {
        {"live", "live"},       {"stale", "stale"},     {"held", "held-by-session"},
        {"invalid", "invalid"}, {"foreign", "foreign"}, {"orphan", "orphaned"}};
    for (const auto& [name, verdict] : expected) {
        const auto from_daemon = e2e::lock_entry(daemon_doc, lock_path(name));
        const auto from_list = e2e::lock_entry(list_doc, lock_path(name));
        ASSERT_TRUE(from_daemon && from_list) << name << "\n" << d.out << "\n" << json.out;
        EXPECT_EQ(e2e::str_or(*from_daemon, "verdict"), verdict) << name;
        EXPECT_EQ(e2e::str_or(*from_list, "verdict"), verdict) << name;
        EXPECT_EQ(e2e::str_or(*from_list, "reason"), e2e::str_or(*from_daemon, "reason")) << name;
        EXPECT_EQ(e2e::str_or(*from_list, "action"), e2e::str_or(*from_daemon, "action")) << name;

        // The table: one row per lock, starting with the verdict, naming the worker.
        bool row_found = false;
        for (const std::string* out : {&table.out, &roots.out}) {
            std::istringstream lines(*out);
            std::string line;
            while (std::getline(lines, line)) {
                if (contains(line, worker(name) + " ")) {
                    row_found = true;
                    EXPECT_EQ(line.rfind(verdict + " ", 0), 0u) << line;
                }
            }
        }
        EXPECT_TRUE(row_found) << name << "\n" << table.out;
        EXPECT_EQ(table.out.find('\x1b'), std::string::npos) << "no colour into a pipe";

        Ran why = agentlock({"why", "--config", config, worker(name)});
        EXPECT_EQ(why.code, 0) << why.describe();
        EXPECT_EQ(why.out.rfind(worker(name) + ": " + verdict + "\n", 0), 0u) << why.out;
        EXPECT_TRUE(
            contains(why.out, "verdict  " + verdict + ": " + e2e::str_or(*from_daemon, "reason")))
            << why.out;
        if (name != "invalid") {
            for (const char* step : {"  pid ", "  start ", "  tmux ", "  host ", "  boot "}) {
                EXPECT_TRUE(contains(why.out, step)) << step << "\n" << why.out;
            }
        }
    }
    Ran why_held = agentlock({"why", "--config", config, worker("held")});
    EXPECT_TRUE(contains(why_held.out, "session " + pane + " exists")) << why_held.out;
    EXPECT_TRUE(contains(why_held.out, "-L " + t.socket_name())) << why_held.out;
    Ran why_stale = agentlock({"why", "--config", config, worker("stale")});
    EXPECT_TRUE(contains(why_stale.out, "would remove it")) << why_stale.out;

    for (const auto& [name, content] : before) {
        ASSERT_TRUE(exists(lock_path(name))) << name << ": list and why never remove anything";
        EXPECT_EQ(read_file(lock_path(name)), content) << name;
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input: clear errors, nothing touched

TEST_F(Cli, BadInputIsNamedAndTouchesNothing) {
    // A missing worker: no directory is created.
    const std::string missing = worker("missing");
    for (const std::vector<std::string>& args : {std::vector<std::string>{"acquire", missing},
                                                 {"run", missing, "--", "true"},
                                                 {"check", missing},
                                                 {"why", missing},
                                                 {"release", missing}}) {
        Ran r = agentlock(args);
        EXPECT_EQ(r.code, 66) << args[0] << ": " << r.describe();
        EXPECT_TRUE(contains(r.err, missing) && contains(r.err, "does not exist")) << r.err;
        EXPECT_FALSE(exists(missing)) << args[0];
    }

    // A symlink to a worker: refused, the real worker's lock untouched.
    const std::string real = make_worker("real");
    Child owner = test::spawn_sleeper();
    put_live("real", owner);
    const std::string held = read_file(lock_path("real"));
    const std::string link = m_root + "/link";
    ASSERT_EQ(::symlink(real.c_str(), link.c_str()), 0);
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"force-release", "--even-if-live", link},
          {"run", link, "--", "true"},
          {"acquire", link},
          {"why", link}}) {
        Ran r = agentlock(args);
        EXPECT_EQ(r.code, 66) << args[0] << ": " << r.describe();
        EXPECT_TRUE(contains(r.err, link) && contains(r.err, "is a symlink to " + real)) << r.err;
        EXPECT_EQ(read_file(lock_path("real")), held) << args[0];
    }

    // An invalid lock: named with its path, kept as it is.
    make_worker("bad");
    put_lock("bad", "{\"pid\": \"twelve\"}");
    const std::string marker = m_tmp.sub("ran");
    for (const std::vector<std::string>& args : {std::vector<std::string>{"acquire", worker("bad")},
                                                 {"run", worker("bad"), "--", "touch", marker},
                                                 {"check", worker("bad")},
                                                 {"release", worker("bad")}}) {
        Ran r = agentlock(args);
        EXPECT_EQ(r.code, 65) << args[0] << ": " << r.describe();
        EXPECT_TRUE(contains(r.err, lock_path("bad")) && contains(r.err, "invalid")) << r.err;
        EXPECT_EQ(read_file(lock_path("bad")), "{\"pid\": \"twelve\"}") << args[0];
    }
    EXPECT_FALSE(exists(marker));

    // A path that is not UTF-8: printed with \xNN, the lock untouched.
    const std::string odd = m_root + "/w\xff";
    test::make_dirs(odd);
    write_file(odd + "/.runtime/agent.lock", "garbage");
    Ran r = agentlock({"acquire", odd});
    EXPECT_EQ(r.code, 65) << r.describe();
    EXPECT_TRUE(contains(r.err, m_root + "/w\\xff/.runtime/agent.lock")) << r.err;
    EXPECT_FALSE(contains(r.err, "\xff")) << r.err;
    EXPECT_EQ(read_file(odd + "/.runtime/agent.lock"), "garbage");
    r = agentlock({"list", m_root});
    EXPECT_TRUE(contains(r.out, "w\\xff")) << r.describe();
    EXPECT_EQ(read_file(odd + "/.runtime/agent.lock"), "garbage");
    r = agentlock({"acquire", m_root + "/gone\xfe"});
    EXPECT_EQ(r.code, 66) << r.describe();
    EXPECT_TRUE(contains(r.err, "gone\\xfe")) << r.err;

    // Usage errors.
    EXPECT_EQ(agentlock({"frobnicate"}).code, 1);
    EXPECT_EQ(agentlock({"acquire"}).code, 1);
    EXPECT_EQ(agentlock({"acquire", "--bogus", real}).code, 1);
    EXPECT_EQ(agentlock({"run", real}).code, 1);
    EXPECT_EQ(read_file(lock_path("real")), held);
}

TEST_F(Cli, EveryCommandHasHelp) {
    for (const char* command :
         {"run", "acquire", "release", "check", "status", "force-release", "list", "why"}) {
        Ran r = agentlock({command, "--help"});
        EXPECT_EQ(r.code, 0) << command;
        EXPECT_EQ(r.out.rfind(std::string("Usage: agentlock ") + command, 0), 0u) << r.out;
        EXPECT_TRUE(contains(r.out, "Exit codes:")) << command;
        EXPECT_TRUE(contains(agentlock({"--help"}).out, command)) << command;
    }
}

} // namespace
} // namespace agentlock
