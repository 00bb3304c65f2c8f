# More canaries than replicas.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: service 'web': update.canary (3) must not exceed replicas (2)";
  parity = true;
  declaration = lib.recursiveUpdate base { services.web.update.canary = 3; };
}
