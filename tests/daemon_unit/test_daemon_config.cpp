// Unit tests of agentlockd's command line: its flags, modes and help. The config file and
// durations are tested with the library (tests/unit/test_config.cpp).

#include "command_line.hpp"
#include "work.hpp"

#include "test_support.hpp"

#include <gtest/gtest.h>

namespace agentlock::daemon {
namespace {

using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------
// The command line

Result<CommandLine> cli(std::vector<std::string> args, std::string* why = nullptr) {
    auto cl = parse_command_line(args);
    if (why != nullptr) {
        *why = cl ? std::string() : cl.error().message;
    }
    return cl;
}

TEST(CommandLine, EveryFlag) {
    auto cl = cli({"--config",
                   "/c.json",
                   "--root",
                   "/a",
                   "--root=/b",
                   "--interval",
                   "5s",
                   "--tmux-socket",
                   "s",
                   "--tmux-timeout=2s",
                   "--dry-run",
                   "--prune",
                   ".git",
                   "--prune",
                   "x",
                   "--max-depth",
                   "7",
                   "--no-one-file-system",
                   "--log-level",
                   "trace",
                   "--log-format=json"});
    ASSERT_TRUE(cl);
    EXPECT_EQ(cl->mode, Mode::run);
    EXPECT_EQ(cl->config_path, "/c.json");
    const ConfigOverrides& o = cl->overrides;
    EXPECT_EQ(o.roots, (std::vector<std::string>{"/a", "/b"}));
    EXPECT_EQ(o.interval, 5s);
    EXPECT_EQ(o.tmux_socket, "s");
    EXPECT_FALSE(o.tmux_socket_path);
    EXPECT_EQ(o.tmux_timeout, 2s);
    EXPECT_EQ(o.dry_run, true);
    EXPECT_EQ(o.prune, (std::vector<std::string>{".git", "x"}));
    EXPECT_EQ(o.max_depth, 7u);
    EXPECT_EQ(o.one_file_system, false);
    EXPECT_EQ(o.log_level, LogLevel::trace);
    EXPECT_EQ(o.log_format, LogFormat::json);

    auto p =
        cli({"--tmux-socket-path", "/tmp/s", "--one-file-system", "--no-prune", "--no-dry-run"});
    ASSERT_TRUE(p);
    EXPECT_EQ(p->overrides.tmux_socket_path, "/tmp/s");
    EXPECT_EQ(p->overrides.one_file_system, true);
    EXPECT_EQ(p->overrides.prune, std::vector<std::string>{});
    EXPECT_EQ(p->overrides.dry_run, false);
    EXPECT_FALSE(p->overrides.roots);
}

TEST(CommandLine, Modes) {
    EXPECT_EQ(cli({"--once", "--json", "--root", "/a"})->mode, Mode::once);
    EXPECT_TRUE(cli({"--once", "--json"})->json);
    EXPECT_EQ(cli({"--check-config"})->mode, Mode::check_config);
    EXPECT_EQ(cli({"--version"})->mode, Mode::version);
    EXPECT_EQ(cli({"--help"})->mode, Mode::help);
    EXPECT_EQ(cli({"-h"})->mode, Mode::help);
    EXPECT_EQ(cli({})->mode, Mode::run);
}

TEST(CommandLine, ErrorsSayWhat) {
    std::string why;
    EXPECT_FALSE(cli({"--no-such-flag"}, &why));
    EXPECT_NE(why.find("--no-such-flag"), std::string::npos) << why;
    EXPECT_FALSE(cli({"--interval"}, &why));
    EXPECT_NE(why.find("--interval needs a value"), std::string::npos) << why;
    EXPECT_FALSE(cli({"--interval", "soon"}, &why));
    EXPECT_NE(why.find("--interval"), std::string::npos) << why;
    EXPECT_FALSE(cli({"--max-depth", "-1"}, &why));
    EXPECT_FALSE(cli({"--max-depth", "3x"}, &why));
    EXPECT_FALSE(cli({"--log-level", "loud"}, &why));
    EXPECT_FALSE(cli({"--log-format", "xml"}, &why));
    EXPECT_FALSE(cli({"--json"}, &why));
    EXPECT_NE(why.find("--once"), std::string::npos) << why;
    EXPECT_FALSE(cli({"--once", "--check-config"}, &why));
    EXPECT_FALSE(cli({"--tmux-socket", "a", "--tmux-socket-path", "/b"}, &why));
    EXPECT_FALSE(cli({"stray"}, &why));
    EXPECT_NE(why.find("stray"), std::string::npos) << why;
    EXPECT_FALSE(cli({"--dry-run=yes"}, &why));
    EXPECT_FALSE(cli({"--config", ""}, &why));
}

// A bad command line is the caller's input: an `invalid` error whose path is the flag at fault.
TEST(CommandLine, ErrorsAreInvalidInputAboutTheFlag) {
    for (const auto& [args, flag] : std::vector<std::pair<std::vector<std::string>, std::string>>{
             {{"--root", "/a", "--interval", "soon"}, "--interval"},
             {{"--max-depth", "3x"}, "--max-depth"},
             {{"--dry-run=yes"}, "--dry-run"},
             {{"--once", "--check-config"}, "--check-config"},
             {{"--root", "/a", "stray"}, "stray"},
             {{"--no-such-flag"}, "--no-such-flag"},
         }) {
        auto cl = parse_command_line(args);
        ASSERT_FALSE(cl) << flag;
        EXPECT_EQ(cl.error().kind, ErrorKind::invalid) << cl.error().message;
        EXPECT_EQ(cl.error().path, flag) << cl.error().message;
        EXPECT_NE(cl.error().message.find(flag), std::string::npos) << cl.error().message;
    }
}

TEST(CommandLine, HelpDocumentsTheContract) {
    const std::string help = help_text();
    for (const char* flag : {"--config",
                             "--root",
                             "--interval",
                             "--tmux-socket",
                             "--tmux-socket-path",
                             "--tmux-timeout",
                             "--dry-run",
                             "--prune",
                             "--max-depth",
                             "--one-file-system",
                             "--no-one-file-system",
                             "--log-level",
                             "--log-format",
                             "--once",
                             "--json",
                             "--check-config",
                             "--version",
                             "SIGHUP",
                             "SIGUSR1",
                             "state=resolved",
                             "Exit codes"}) {
        EXPECT_NE(help.find(flag), std::string::npos) << flag;
    }
    EXPECT_EQ(version_text().rfind("agentlockd ", 0), 0u);
}

TEST(CommandLine, MetricsFile) {
    auto cl = cli({"--metrics-file", "/var/lib/prometheus/node-exporter/agentlock.prom"});
    ASSERT_TRUE(cl);
    EXPECT_EQ(cl->overrides.metrics_file, "/var/lib/prometheus/node-exporter/agentlock.prom");
    EXPECT_FALSE(cli({"--metrics-file"}));
    EXPECT_NE(help_text().find("--metrics-file"), std::string::npos);
}

TEST(Reload, AChangedRootServerRebuildsWhatIsKnown) {
    Config a;
    a.roots = {"/srv/town"};
    Config b = a;
    EXPECT_FALSE(scope_differs(a, b));
    b.root_tmux["/srv/town"] = RootTmux{"", "", true};
    EXPECT_TRUE(scope_differs(a, b)) << "plain root -> gastown town";
    Config c = b;
    c.root_tmux["/srv/town"] = RootTmux{"town-a1b2c3", "", false};
    EXPECT_TRUE(scope_differs(b, c)) << "gastown town -> an explicit socket";
    EXPECT_FALSE(scope_differs(c, c));
}

} // namespace
} // namespace agentlock::daemon
