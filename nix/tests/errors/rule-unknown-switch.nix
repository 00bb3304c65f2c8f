# A rule matches a port on a switch no rack declares.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: enrollment rule 'workers' uses unknown switch 'rack3-tor'";
  parity = true;
  declaration = lib.recursiveUpdate base {
    enrollmentRules.workers.match.switchPorts = [
      {
        switch = "rack3-tor";
        port = "swp1";
      }
    ];
  };
}
