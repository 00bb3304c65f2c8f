# A reschedule backoff whose cap is below its first delay.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: service 'web': reschedule.maxDelaySeconds (10) must not be less than delaySeconds (30)";
  parity = true;
  declaration = lib.recursiveUpdate base {
    services.web.reschedule = {
      delaySeconds = 30;
      maxDelaySeconds = 10;
    };
  };
}
