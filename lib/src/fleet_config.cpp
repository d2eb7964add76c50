#include <agentlock/duration.hpp>
#include <agentlock/fleet_config.hpp>

#include <boost/json.hpp>
#include <filesystem>

namespace agentlock {

namespace {

std::string quote(std::string_view s) {
    return "\"" + std::string(s) + "\"";
}

Error key_error(const std::string& origin, std::string_view key, const std::string& what) {
    return invalid_input(origin, "config " + origin + ": key " +
                                     quote("fleet." + std::string(key)) + " " + what);
}

Status read_duration(const std::string& origin, std::string_view key, const boost::json::value& v,
                     std::chrono::milliseconds& out) {
    if (!v.is_string()) {
        return key_error(origin, key, "must be a duration string such as \"10s\"");
    }
    auto d = parse_duration(std::string_view(v.get_string()));
    if (!d) {
        return key_error(origin, key, "is not a duration: " + d.error().message);
    }
    out = *d;
    return {};
}

Status read_string(const std::string& origin, std::string_view key, const boost::json::value& v,
                   std::string& out) {
    if (!v.is_string()) {
        return key_error(origin, key, "must be a string");
    }
    out = std::string(v.get_string());
    return {};
}

} // namespace

Result<EtcdEndpoint> parse_etcd_endpoint(const std::string& url) {
    EtcdEndpoint e;
    std::string_view rest(url);
    if (rest.starts_with("http://")) {
        rest.remove_prefix(7);
    } else if (rest.starts_with("https://")) {
        e.tls = true;
        rest.remove_prefix(8);
    } else {
        return invalid_input(url, "not an http:// or https:// URL: " + quote(url));
    }
    if (!rest.empty() && rest.back() == '/') {
        rest.remove_suffix(1);
    }
    if (rest.find_first_of("/@?#") != std::string_view::npos) {
        return invalid_input(url, "only scheme://host:port is accepted, not " + quote(url));
    }
    std::size_t colon = rest.rfind(':');
    if (rest.starts_with("[")) {
        const std::size_t close = rest.find(']');
        if (close == std::string_view::npos || colon == std::string_view::npos || colon < close) {
            return invalid_input(url, "no port in " + quote(url));
        }
        e.host = std::string(rest.substr(1, close - 1));
    } else {
        if (colon == std::string_view::npos) {
            return invalid_input(url, "no port in " + quote(url));
        }
        e.host = std::string(rest.substr(0, colon));
    }
    e.port = std::string(rest.substr(colon + 1));
    if (e.host.empty() || e.port.empty() ||
        e.port.find_first_not_of("0123456789") != std::string::npos || e.port.size() > 5 ||
        std::stoul(e.port) == 0 || std::stoul(e.port) > 65535) {
        return invalid_input(url, "no valid host and port in " + quote(url));
    }
    return e;
}

Result<FleetConfig> parse_fleet_config(const boost::json::value& v, const std::string& origin) {
    if (!v.is_object()) {
        return invalid_input(origin, "config " + origin + ": key \"fleet\" must be an object");
    }
    FleetConfig fleet;
    for (const auto& [raw_key, item] : v.get_object()) {
        const std::string_view key(raw_key.data(), raw_key.size());
        Status st;
        if (key == "etcd") {
            if (!item.is_array() || item.get_array().empty()) {
                return key_error(origin, key, "must be a non-empty array of URLs");
            }
            fleet.etcd.clear();
            for (const auto& url : item.get_array()) {
                if (!url.is_string()) {
                    return key_error(origin, key, "must be an array of strings");
                }
                fleet.etcd.emplace_back(url.get_string());
            }
        } else if (key == "prefix") {
            st = read_string(origin, key, item, fleet.prefix);
        } else if (key == "lease_ttl") {
            st = read_duration(origin, key, item, fleet.lease_ttl);
        } else if (key == "host_gone_after") {
            st = read_duration(origin, key, item, fleet.host_gone_after);
        } else if (key == "request_timeout") {
            st = read_duration(origin, key, item, fleet.request_timeout);
        } else if (key == "remove_host_gone") {
            if (!item.is_bool()) {
                return key_error(origin, key, "must be true or false");
            }
            fleet.remove_host_gone = item.get_bool();
        } else if (key == "cacert") {
            st = read_string(origin, key, item, fleet.cacert);
        } else if (key == "cert") {
            st = read_string(origin, key, item, fleet.cert);
        } else if (key == "key") {
            st = read_string(origin, key, item, fleet.key);
        } else {
            return key_error(origin, key,
                             "is unknown (known keys: etcd, prefix, lease_ttl, host_gone_after, "
                             "remove_host_gone, request_timeout, cacert, cert, key)");
        }
        if (!st) {
            return st.error();
        }
    }
    Status checked = check_fleet_config(fleet, origin);
    if (!checked) {
        return checked.error();
    }
    return fleet;
}

Status check_fleet_config(FleetConfig& fleet, const std::string& origin) {
    bool any_tls = false;
    for (const auto& url : fleet.etcd) {
        auto e = parse_etcd_endpoint(url);
        if (!e) {
            return key_error(origin, "etcd", e.error().message);
        }
        any_tls = any_tls || e->tls;
    }
    while (fleet.prefix.size() > 1 && fleet.prefix.back() == '/') {
        fleet.prefix.pop_back();
    }
    if (fleet.prefix.empty() || fleet.prefix.front() != '/' || fleet.prefix == "/") {
        return key_error(origin, "prefix", "must start with '/' and name more than the root");
    }
    if (fleet.lease_ttl < std::chrono::seconds(2)) {
        return key_error(origin, "lease_ttl", "must be at least 2s (etcd counts whole seconds)");
    }
    if (fleet.host_gone_after < fleet.lease_ttl) {
        return key_error(origin, "host_gone_after", "must be at least lease_ttl");
    }
    if (fleet.request_timeout < std::chrono::milliseconds(100) ||
        fleet.request_timeout > fleet.lease_ttl / 2) {
        return key_error(origin, "request_timeout", "must be from 100ms to half of lease_ttl");
    }
    if (fleet.cert.empty() != fleet.key.empty()) {
        return key_error(origin, fleet.cert.empty() ? "cert" : "key",
                         "is needed with the other: cert and key go together");
    }
    if (!any_tls && (!fleet.cacert.empty() || !fleet.cert.empty())) {
        return key_error(origin, fleet.cacert.empty() ? "cert" : "cacert",
                         "is set but no etcd endpoint is https://");
    }
    for (std::string* file : {&fleet.cacert, &fleet.cert, &fleet.key}) {
        if (!file->empty()) {
            std::error_code ec;
            *file = std::filesystem::absolute(*file, ec).string();
        }
    }
    return {};
}

} // namespace agentlock
