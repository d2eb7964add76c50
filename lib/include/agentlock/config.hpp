#pragma once
// agentlockd's configuration: the JSON file, command-line overrides, validation, and what a
// reload changed.

#include <agentlock/fleet_config.hpp>
#include <agentlock/log_level.hpp>
#include <agentlock/pass.hpp>
#include <agentlock/result.hpp>
#include <agentlock/tmux_probe.hpp>
#include <agentlock/tmux_servers.hpp>
#include <agentlock/tree_walk.hpp>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace agentlock {

/// Where the installed config lives; used when --config is not given and the file exists.
inline constexpr std::string_view k_default_config_path = "/etc/agentlockd/agentlockd.json";
/// Shortest interval and tmux time-out accepted.
inline constexpr std::chrono::milliseconds k_min_interval{10};

/// A root's own tmux server, as its entry in `roots` names it (at most one of the three).
struct RootTmux {
    std::string tmux_socket;      ///< tmux -L NAME
    std::string tmux_socket_path; ///< tmux -S PATH
    bool gastown = false;         ///< the town's own socket, named as gastown names it

    bool operator==(const RootTmux&) const = default;
};

/// Everything agentlockd can be configured with. Defaults are the daemon's defaults.
struct Config {
    std::vector<std::string> roots;
    /// The roots whose entry names their own tmux server (an object in `roots`), by root as in
    /// `roots`; the others use tmux_socket / tmux_socket_path (or tmux's default server).
    std::map<std::string, RootTmux> root_tmux;
    /// Time between passes when events are off or unavailable (polling), and between re-checks
    /// of owners that have no pidfd.
    std::chrono::milliseconds interval{std::chrono::seconds(30)};
    bool interval_set = false; ///< interval was given in the file or on the command line
    /// With events active: time between the full passes that catch what events missed. When
    /// only interval is set, full passes keep running every interval (see pass_period).
    std::chrono::milliseconds full_pass_interval{std::chrono::minutes(5)};
    bool full_pass_interval_set = false; ///< given in the file or on the command line
    /// React to owner deaths (pidfd), lock changes (inotify) and ended tmux sessions at once.
    bool events = true;
    std::string tmux_socket;      ///< tmux -L NAME
    std::string tmux_socket_path; ///< tmux -S PATH
    std::chrono::milliseconds tmux_timeout{std::chrono::seconds(3)};
    /// A tmux server or session created more than this after a lock was acquired is not its
    /// holder; covers a launcher that writes the lock before it creates the session.
    std::chrono::milliseconds tmux_created_slack{k_default_tmux_created_slack};
    bool dry_run = false;
    std::vector<std::string> prune = default_prune_list();
    std::optional<unsigned> max_depth;
    bool one_file_system = true;
    LogLevel log_level = LogLevel::info;
    LogFormat log_format = LogFormat::automatic;
    /// Where to write metrics for node_exporter's textfile collector (a `.prom` file); empty:
    /// none.
    std::string metrics_file;
    /// Fleet mode (docs/fleet.md); unset: no etcd, no network. Read at start only: a reload
    /// that changes it is logged and takes effect on restart.
    std::optional<FleetConfig> fleet;

    bool operator==(const Config&) const = default;
};

/// Values given on the command line; each one that is set wins over the file.
struct ConfigOverrides {
    std::optional<std::vector<std::string>> roots;
    std::optional<std::chrono::milliseconds> interval;
    std::optional<std::chrono::milliseconds> full_pass_interval;
    std::optional<bool> events;
    std::optional<std::string> tmux_socket;
    std::optional<std::string> tmux_socket_path;
    std::optional<std::chrono::milliseconds> tmux_timeout;
    std::optional<std::chrono::milliseconds> tmux_created_slack;
    std::optional<bool> dry_run;
    std::optional<std::vector<std::string>> prune;
    std::optional<unsigned> max_depth;
    std::optional<bool> one_file_system;
    std::optional<LogLevel> log_level;
    std::optional<LogFormat> log_format;
    std::optional<std::string> metrics_file;
};

/// Parses the text of a config file over the defaults. A failure is an `invalid` Error about
/// `origin` (the file name), whose message starts with it: `config FILE: key "intervall" is
/// unknown`. Roots are not checked for existence.
Result<Config> parse_config(std::string_view json, const std::string& origin);

/// Reads and parses a config file; an `io` Error when it cannot be read.
Result<Config> load_config_file(const std::string& path);

/// Lays the command-line values over `config`. A tmux socket flag replaces both socket keys
/// (roots with a server of their own keep it); --root replaces the roots, their servers too.
void apply_overrides(Config& config, const ConfigOverrides& overrides);

/// Checks a merged config: at least one root, not both tmux socket options, sane durations,
/// valid prune names, a metrics file named `*.prom`. Makes roots and the metrics file absolute
/// and drops trailing slashes and duplicate roots. A failure
/// is an `invalid` Error whose path is the key at fault.
Status finish_config(Config& config);

/// The config as the daemon uses it: the file at `path` (none when empty), then the overrides,
/// then finish_config. Used at start-up and on every reload.
Result<Config> resolve_config(const std::string& path, const ConfigOverrides& overrides);

/// The config file to use when --config is not given: the default path if it exists, else none.
std::string default_config_path_if_present();

/// Config values as log fields, in key order: roots, interval, tmux_socket, tmux_socket_path,
/// root_tmux (each root with a server of its own, as "ROOT=SERVER" joined with ',', a gastown
/// town's as "ROOT=gastown -L NAME"; "none"), tmux_timeout, ... log_format, events,
/// full_pass_interval, metrics_file, tmux_created_slack.
Fields config_fields(const Config& config);

/// Time between the starts of two full passes: `interval` when events are off or not in use
/// (`events_active` false); with events, full_pass_interval, except that a config that sets
/// interval but not full_pass_interval keeps its passes every interval (as before events).
std::chrono::milliseconds pass_period(const Config& config, bool events_active);

/// The keys whose values differ, with the new values, for config.reloaded; first the field
/// "changed" listing the keys (comma-separated, "none" when nothing changed).
Fields config_changes(const Config& before, const Config& after);

/// How to reach the tmux server the config names for every root without one of its own.
TmuxServer tmux_server_of(const Config& config);

/// "-L NAME", "-S PATH" or "default", for logs: tmux_server_of's server.
std::string describe_tmux_server(const Config& config);

/// The tmux server of `root` (one of config.roots): its own, a gastown town's socket (derived
/// now; unresolved when the town's path does not resolve), or tmux_server_of's.
ServerRef tmux_server_of_root(const Config& config, const std::string& root);

/// The configured root that contains `path` (longest match), if any.
std::optional<std::string> root_of_path(const Config& config, const std::string& path);

/// The options for one pass (without the cancel flag), with each root's tmux server.
PassOptions pass_options_of(const Config& config);

/// Joins paths or names with ',' for a log field.
std::string join_list(const std::vector<std::string>& items);

} // namespace agentlock
