{
  "targets": [
    {
      "target_name": "fedpg_native",
      "sources": [
        "native/src/addon.cc",
        "native/src/model.cc",
        "native/src/lu.cc",
        "native/src/exact.cc",
        "native/src/sparse.cc",
        "native/src/sampler.cc"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions", "-O2"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-O2"],
      "cflags": ["-O3", "-Wall", "-Wextra", "-ffp-contract=off", "-fvisibility=hidden"],
      "cflags_cc": ["-std=c++17", "-O3", "-Wall", "-Wextra", "-ffp-contract=off", "-fvisibility=hidden"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "OTHER_CPLUSPLUSFLAGS": ["-O3", "-Wall", "-Wextra", "-ffp-contract=off"]
      },
      "msvs_settings": {
        "VCCLCompilerTool": { "ExceptionHandling": 1, "AdditionalOptions": ["/std:c++17", "/fp:precise"] }
      }
    }
  ]
}
