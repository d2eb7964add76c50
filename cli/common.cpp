#include "cli.hpp"

#include <agentlock/text.hpp>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sys/stat.h>
#include <unistd.h>

namespace agentlock::cli {

std::optional<std::string> Args::value(std::string_view flag) const {
    auto it = flags.find(flag);
    if (it == flags.end() || it->second.empty()) {
        return std::nullopt;
    }
    return it->second.back();
}

Result<Args> parse_args(const std::vector<std::string>& args, const std::vector<FlagSpec>& specs,
                        std::optional<std::size_t> command_after) {
    Args out;
    bool flags_done = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& arg = args[i];
        if (command_after && out.operands.size() > *command_after) {
            std::size_t first = i;
            if (arg == "--") {
                ++first;
            }
            out.command.assign(args.begin() + static_cast<std::ptrdiff_t>(first), args.end());
            break;
        }
        if (flags_done || arg == "-" || arg.empty() || arg[0] != '-') {
            out.operands.push_back(arg);
            continue;
        }
        if (arg == "--") {
            flags_done = true;
            continue;
        }
        if (arg == "-h" || arg == "--help") {
            out.help = true;
            continue;
        }
        std::string name = arg;
        std::optional<std::string> inline_value;
        if (const auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
            name = arg.substr(0, eq);
            inline_value = arg.substr(eq + 1);
        }
        const FlagSpec* spec = nullptr;
        for (const auto& s : specs) {
            if (s.name == name) {
                spec = &s;
            }
        }
        if (spec == nullptr) {
            return invalid_input(name, "unknown option " + name);
        }
        if (!spec->takes_value) {
            if (inline_value) {
                return invalid_input(name, name + " takes no value");
            }
            out.flags[name];
            continue;
        }
        if (!inline_value) {
            if (i + 1 >= args.size()) {
                return invalid_input(name, name + " needs a value");
            }
            inline_value = args[++i];
        }
        out.flags[name].push_back(*inline_value);
    }
    if (command_after && out.operands.size() > *command_after && out.command.empty()) {
        return invalid_input("CMD", "no command given after the worker");
    }
    return out;
}

std::string shown(std::string_view text) {
    return escape_invalid_utf8(text);
}

int fail(int code, std::string_view message) {
    std::cerr << "agentlock: " << shown(message) << "\n";
    return code;
}

int exit_code_of(const Error& error) {
    switch (error.kind) {
    case ErrorKind::not_locked:
        return k_exit_ok;
    case ErrorKind::locked:
        return k_exit_locked;
    case ErrorKind::invalid_lock:
        return k_exit_invalid_lock;
    case ErrorKind::io:
        return k_exit_io;
    case ErrorKind::invalid:
        return k_exit_usage;
    }
    return k_exit_software;
}

Status check_worker_dir(const std::string& worker) {
    struct stat st {};
    if (::lstat(worker.c_str(), &st) != 0) {
        const int saved = errno;
        if (saved == ENOENT) {
            return invalid_input(worker, "worker " + worker + " does not exist");
        }
        return io_error("stat worker", worker, saved);
    }
    if (S_ISLNK(st.st_mode)) {
        std::string target(4096, '\0');
        const ssize_t n = ::readlink(worker.c_str(), target.data(), target.size());
        target.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
        return invalid_input(worker, "worker " + worker + " is a symlink" +
                                         (target.empty() ? "" : " to " + target) +
                                         ": give the directory itself (the daemon does not "
                                         "follow symlinks, so a lock taken through one is not "
                                         "where it looks)");
    }
    if (!S_ISDIR(st.st_mode)) {
        return invalid_input(worker, "worker " + worker + " is not a directory");
    }
    return {};
}

std::string config_path_of(const Args& args) {
    if (auto given = args.value("--config")) {
        return *given;
    }
    std::string user_dir;
    if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg != nullptr && xdg[0] == '/') {
        user_dir = xdg;
    } else if (const char* home = std::getenv("HOME"); home != nullptr && home[0] == '/') {
        user_dir = std::string(home) + "/.config";
    }
    struct stat st {};
    if (!user_dir.empty()) {
        const std::string user = user_dir + "/agentlockd/agentlockd.json";
        if (::stat(user.c_str(), &st) == 0) {
            return user;
        }
    }
    return default_config_path_if_present();
}

Result<TmuxServer> tmux_server_of_args(const Args& args, const std::string& worker) {
    const auto name = args.value("--tmux-socket");
    const auto path = args.value("--tmux-socket-path");
    if (name && path) {
        return invalid_input("--tmux-socket", "give --tmux-socket or --tmux-socket-path, not both");
    }
    if (name) {
        return TmuxServer{*name, ""};
    }
    if (path) {
        return TmuxServer{"", *path};
    }
    const std::string config_path = config_path_of(args);
    if (config_path.empty()) {
        return TmuxServer{};
    }
    auto config = load_config_file(config_path);
    if (!config) {
        return config.error();
    }
    Config finished = *config;
    if (!finished.roots.empty() && finish_config(finished)) {
        std::error_code ec;
        std::string absolute = std::filesystem::absolute(worker, ec).string();
        while (absolute.size() > 1 && absolute.back() == '/') {
            absolute.pop_back();
        }
        if (auto root = !ec ? root_of_path(finished, absolute) : std::nullopt) {
            const ServerRef server = tmux_server_of_root(finished, *root);
            if (!server.unresolved.empty()) {
                return invalid_input(config_path,
                                     "config " + config_path + ": root " + *root +
                                         ": tmux server not named: " + server.unresolved);
            }
            return server.server;
        }
    }
    return tmux_server_of(*config);
}

std::string describe(const TmuxServer& server) {
    if (!server.socket_path.empty()) {
        return "-S " + server.socket_path;
    }
    if (!server.socket_name.empty()) {
        return "-L " + server.socket_name;
    }
    return "default";
}

std::string format_age(Timestamp since) {
    using namespace std::chrono;
    const auto now = time_point_cast<nanoseconds>(system_clock::now());
    const auto s = duration_cast<seconds>(now - since).count();
    if (s < 0) {
        return "in the future";
    }
    if (s < 120) {
        return std::to_string(s) + "s";
    }
    if (s < 120 * 60) {
        return std::to_string(s / 60) + "m";
    }
    if (s < 48 * 3600) {
        return std::to_string(s / 3600) + "h";
    }
    return std::to_string(s / 86400) + "d";
}

std::string describe_holder(const LockInfo& info) {
    return "PID " + std::to_string(info.pid) + ", session " +
           (info.session_id.empty() ? "(none)" : info.session_id) + ", host " +
           (info.hostname.empty() ? "(none)" : info.hostname) + ", since " +
           format_rfc3339(std::chrono::floor<std::chrono::seconds>(info.acquired_at))
               .substr(0, 19) +
           "Z (" + format_age(info.acquired_at) + " ago)";
}

} // namespace agentlock::cli
