{
  "targets": [
    {
      "target_name": "fastcdc",
      "sources": ["fastcdc.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
