# A health check that times out after its next run started.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: service 'web': health.timeoutSeconds (30) must not exceed intervalSeconds (10)";
  parity = true;
  declaration = lib.recursiveUpdate base { services.web.health.timeoutSeconds = 30; };
}
