# A service constrained to a rack that is not declared.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: service 'web' uses unknown rack 'rack3'";
  parity = true;
  declaration = lib.recursiveUpdate base { services.web.constraints.racks = [ "rack1" "rack3" ]; };
}
