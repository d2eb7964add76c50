# Install rules and the Debian package. Included last from the top-level CMakeLists.txt.
#
#   cmake --install <build> [--prefix P]     (or DESTDIR=... for a staged install)
#   scripts/package.sh                       (the .deb files, through CPack)
#
# Layout, relative to the prefix unless absolute:
#   bin/agentlockd                                 component daemon
#   bin/agentlock                                  component daemon
#   lib/systemd/user/agentlockd.service            component daemon  (AGENTLOCK_SYSTEMD_USER_UNIT_DIR)
#   share/man/man1/agentlock.1.gz                  component daemon
#   share/bash-completion/completions/agentlock    component daemon
#   lib/systemd/system/agentlockd.service          component daemon  (AGENTLOCK_SYSTEMD_UNIT_DIR)
#   lib/sysusers.d/agentlock.conf                  component daemon  (AGENTLOCK_SYSUSERS_DIR)
#   /etc/agentlockd/agentlockd.json                component daemon  (prefix /usr or /: /etc;
#                                                  any other prefix: <prefix>/etc/agentlockd)
#   share/man/man8/agentlockd.8.gz                 component daemon
#   share/doc/agentlock/{copyright,changelog.gz}   component daemon
#   include/agentlock/*.hpp                        component dev
#   <libdir>/libagentlock.a                        component dev
#   <libdir>/cmake/agentlock/agentlock{Config,ConfigVersion,Targets*}.cmake   component dev
#   share/doc/libagentlock-dev/{copyright,changelog.gz}                       component dev
#
# The Debian package: component daemon is package agentlock, component dev is libagentlock-dev
# (the static library, its headers and the CMake package; it depends on Boost.JSON's -dev package).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(AGENTLOCK_SYSTEMD_UNIT_DIR "lib/systemd/system"
    CACHE STRING "Where the systemd unit is installed (relative: under the prefix)")
set(AGENTLOCK_SYSTEMD_USER_UNIT_DIR "lib/systemd/user"
    CACHE STRING "Where the systemd user unit is installed (relative: under the prefix)")
set(AGENTLOCK_SYSUSERS_DIR "lib/sysusers.d"
    CACHE STRING "Where the sysusers.d entry is installed (relative: under the prefix)")

# The config lives in /etc for a system prefix (GNUInstallDirs' rule for /usr and /), and under
# the prefix otherwise; relative there so that `cmake --install --prefix P` keeps it under P.
if(CMAKE_INSTALL_FULL_SYSCONFDIR STREQUAL "/etc")
  set(_agentlock_config_dir "/etc/agentlockd")
else()
  set(_agentlock_config_dir "${CMAKE_INSTALL_SYSCONFDIR}/agentlockd")
endif()

# The service user: the sysusers.d entry is shipped only when the unit names a dedicated User=.
set(_agentlock_unit "${PROJECT_SOURCE_DIR}/systemd/agentlockd.service")
set(_agentlock_config "${PROJECT_SOURCE_DIR}/config/agentlockd.json")
set(_agentlock_unit_user "")
if(EXISTS "${_agentlock_unit}")
  file(STRINGS "${_agentlock_unit}" _agentlock_unit_user REGEX "^User=")
  string(REGEX REPLACE "^User=" "" _agentlock_unit_user "${_agentlock_unit_user}")
else()
  message(WARNING "${_agentlock_unit} is missing: the install has no systemd unit")
endif()
if(NOT EXISTS "${_agentlock_config}")
  message(WARNING "${_agentlock_config} is missing: the install has no default config")
endif()

# --- the daemon and what runs it -------------------------------------------------------------
install(TARGETS agentlockd RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT daemon)
install(TARGETS agentlock_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT daemon)
install(FILES "${PROJECT_SOURCE_DIR}/systemd/user/agentlockd.service"
        DESTINATION ${AGENTLOCK_SYSTEMD_USER_UNIT_DIR} COMPONENT daemon)
install(FILES "${PROJECT_SOURCE_DIR}/cli/agentlock.bash"
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/bash-completion/completions RENAME agentlock
        COMPONENT daemon)
install(FILES "${_agentlock_unit}" DESTINATION ${AGENTLOCK_SYSTEMD_UNIT_DIR} COMPONENT daemon
        OPTIONAL)
install(FILES "${_agentlock_config}" DESTINATION ${_agentlock_config_dir} COMPONENT daemon
        OPTIONAL)
if(_agentlock_unit_user)
  install(FILES "${PROJECT_SOURCE_DIR}/packaging/agentlock.sysusers.conf"
          DESTINATION ${AGENTLOCK_SYSUSERS_DIR} RENAME agentlock.conf COMPONENT daemon)
endif()

# The man page and the Debian changelog are installed gzipped (-n: no name or time stamp, so the
# package is reproducible).
set(_agentlock_gz_dir "${PROJECT_BINARY_DIR}/packaging")
set(_agentlock_gz_files)
foreach(_src IN ITEMS docs/agentlockd.8 docs/agentlock.1 packaging/changelog)
  get_filename_component(_name "${_src}" NAME)
  set(_out "${_agentlock_gz_dir}/${_name}.gz")
  add_custom_command(
    OUTPUT "${_out}"
    COMMAND ${CMAKE_COMMAND} -E make_directory "${_agentlock_gz_dir}"
    COMMAND sh -c "gzip -9nc \"$1\" > \"$2\"" sh "${PROJECT_SOURCE_DIR}/${_src}" "${_out}"
    DEPENDS "${PROJECT_SOURCE_DIR}/${_src}"
    COMMENT "gzip ${_src}"
    VERBATIM)
  list(APPEND _agentlock_gz_files "${_out}")
endforeach()
add_custom_target(agentlock_install_docs ALL DEPENDS ${_agentlock_gz_files})
install(FILES "${_agentlock_gz_dir}/agentlockd.8.gz"
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man8 COMPONENT daemon)
install(FILES "${_agentlock_gz_dir}/agentlock.1.gz"
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT daemon)

# The changelog's newest entry must name this version.
file(STRINGS "${PROJECT_SOURCE_DIR}/packaging/changelog" _agentlock_changelog_head LIMIT_COUNT 1)
if(NOT _agentlock_changelog_head MATCHES "^agentlock \\(${PROJECT_VERSION}\\) ")
  message(FATAL_ERROR "packaging/changelog: the newest entry is '${_agentlock_changelog_head}', "
                      "not version ${PROJECT_VERSION}: add an entry for it")
endif()

foreach(_component IN ITEMS daemon dev)
  set(_pkg agentlock)
  if(_component STREQUAL "dev")
    set(_pkg libagentlock-dev)
  endif()
  install(FILES "${PROJECT_SOURCE_DIR}/packaging/copyright" "${_agentlock_gz_dir}/changelog.gz"
          DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${_pkg} COMPONENT ${_component})
endforeach()

# --- the library, its headers and its CMake package -----------------------------------------
set(_agentlock_cmake_dir "${CMAKE_INSTALL_LIBDIR}/cmake/agentlock")
# agentlock links the INTERFACE targets agentlock_warnings and agentlock_sanitizers PRIVATE; a
# static library's private links reach its export as $<LINK_ONLY:...>, so they travel along
# (they carry no link options unless the build used AGENTLOCK_SANITIZE, which then needs them).
install(TARGETS agentlock agentlock_warnings agentlock_sanitizers
        EXPORT agentlockTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
install(DIRECTORY "${PROJECT_SOURCE_DIR}/lib/include/agentlock"
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev
        FILES_MATCHING PATTERN "*.hpp"
        # The fleet's etcd client lives in agentlock_fleet, which only agentlockd links.
        PATTERN "fleet.hpp" EXCLUDE PATTERN "etcd_client.hpp" EXCLUDE)
install(EXPORT agentlockTargets NAMESPACE agentlock:: DESTINATION ${_agentlock_cmake_dir}
        COMPONENT dev)
configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/agentlockConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/cmake/agentlockConfig.cmake"
  INSTALL_DESTINATION ${_agentlock_cmake_dir})
write_basic_package_version_file("${PROJECT_BINARY_DIR}/cmake/agentlockConfigVersion.cmake"
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES "${PROJECT_BINARY_DIR}/cmake/agentlockConfig.cmake"
              "${PROJECT_BINARY_DIR}/cmake/agentlockConfigVersion.cmake"
        DESTINATION ${_agentlock_cmake_dir} COMPONENT dev)

# --- CPack: the Debian packages --------------------------------------------------------------
set(CPACK_PACKAGE_NAME "agentlock")
set(CPACK_PACKAGE_VENDOR "agentlock")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_CONTACT "agentlock maintainers <maintainers@users.noreply.r-seed-a962dc02.example>")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_STRIP_FILES ON)
set(CPACK_GENERATOR "DEB")
set(CPACK_COMPONENTS_ALL daemon dev)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # <name>_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SOURCE "agentlock")
set(CPACK_DEBIAN_PACKAGE_SECTION "admin")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_COMPRESSION_TYPE "xz")

# agentlock: the daemon. Depends: the shared libraries agentlockd links, found by dpkg-shlibdeps,
# plus systemd-sysusers for the postinst.
set(CPACK_DEBIAN_DAEMON_PACKAGE_NAME "agentlock")
set(CPACK_DEBIAN_DAEMON_PACKAGE_SECTION "admin")
set(CPACK_DEBIAN_DAEMON_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_DAEMON_PACKAGE_DEPENDS "systemd | systemd-standalone-sysusers | systemd-sysusers")
set(CPACK_DEBIAN_DAEMON_PACKAGE_RECOMMENDS "tmux")
set(CPACK_COMPONENT_DAEMON_DESCRIPTION "supervisor that keeps coding agents' worker locks true
agentlockd walks worker roots for <worker>/.runtime/agent.lock files written by
coding agents, judges each lock against the live processes and tmux sessions,
removes the stale ones and logs every finding to the journal with structured
fields. A live agent's lock is never removed. The agentlock command takes and
releases locks from shells and launchers (agentlock run WORKER -- CMD) and
lists them as the daemon judges them.

The service is installed but neither enabled nor started: set the worker root
(a drop-in with ReadWritePaths= and User=, and the roots in
/etc/agentlockd/agentlockd.json), then run systemctl enable --now agentlockd.
To run it as yourself instead, write ~/.config/agentlockd/agentlockd.json and
run systemctl --user enable --now agentlockd.")
set(CPACK_DEBIAN_DAEMON_PACKAGE_CONTROL_EXTRA
    "${PROJECT_SOURCE_DIR}/packaging/debian/conffiles"
    "${PROJECT_SOURCE_DIR}/packaging/debian/postinst"
    "${PROJECT_SOURCE_DIR}/packaging/debian/prerm"
    "${PROJECT_SOURCE_DIR}/packaging/debian/postrm")

# libagentlock-dev: the library for agent launchers written in C++.
set(CPACK_DEBIAN_DEV_PACKAGE_NAME "libagentlock-dev")
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION "libdevel")
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "libboost-json1.81-dev")
set(CPACK_COMPONENT_DEV_DESCRIPTION "C++ library to take and judge coding agents' worker locks
agentlock is a static C++20 library: the agent.lock format, the Lock API
(acquire, release, read, check, status, force_release), the process and tmux
probes, the staleness rule and a full cleaner pass. It ships a CMake package:
find_package(agentlock CONFIG REQUIRED) gives the target agentlock::agentlock.")

include(CPack)
