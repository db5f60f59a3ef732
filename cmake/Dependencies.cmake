# Every third-party dependency is found here, once; component CMakeLists only link targets.
# All of them come from Debian 12 packages (see scripts/setup.sh).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(Protobuf REQUIRED)                 # module mode: Debian ships no config file
find_package(gRPC CONFIG REQUIRED)              # gRPC::grpc++, gRPC::grpc_cpp_plugin
find_package(nlohmann_json REQUIRED)
find_package(simdjson CONFIG REQUIRED)             # simdjson::simdjson (ingress's webhook parser)
find_package(CURL REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)      # prometheus-cpp::core: registry, families, text serializer
pkg_check_modules(PISTACHE REQUIRED IMPORTED_TARGET libpistache)
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)
pkg_check_modules(RE2 REQUIRED IMPORTED_TARGET re2)

if(KATY_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()
