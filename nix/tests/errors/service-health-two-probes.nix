# A health check with both an HTTP and a TCP probe.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: service 'web': health must set exactly one of http, tcp or exec";
  parity = true;
  declaration = lib.recursiveUpdate base { services.web.health.tcp.port = 8080; };
}
