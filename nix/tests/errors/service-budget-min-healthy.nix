# A budget that keeps more instances healthy than the service has.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: service 'web': budget.minHealthy (3) must not exceed replicas (2)";
  parity = true;
  declaration = lib.recursiveUpdate base { services.web.budget.minHealthy = 3; };
}
