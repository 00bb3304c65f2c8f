# WIRING ONLY: nix/modules/node-agent.nix is called with hand-written stand-ins for the few nixpkgs `lib` and `pkgs`
# functions it uses, and with option values given directly (defaults already applied). These tests check how the
# module turns its options into the service (command line, rendered settings, the token credential, and the
# settings that let instances survive the agent's restart); they do not evaluate NixOS.
let
  b = builtins;
  lib = {
    mkOption = option: option;
    mkEnableOption = what: {
      type = "bool";
      default = false;
      description = "Whether to enable ${what}.";
    };
    mkIf = condition: content: { inherit condition content; };
    literalExpression = text: { inherit text; };
    types = {
      package = "package";
      str = "str";
      nullOr = t: "null or ${t}";
      enum = values: { enum = values; };
      submodule = m: { submodule = m; };
    };
    optionalAttrs = cond: attrs: if cond then attrs else { };
    optional = cond: x: if cond then [ x ] else [ ];
    hasPrefix = prefix: s: b.substring 0 (b.stringLength prefix) s == prefix;
    removePrefix = prefix: s: b.substring (b.stringLength prefix) (-1) s;
    getExe' = pkg: bin: "${pkg}/bin/${bin}";
  };
  pkgs.formats.json = _: {
    type = "json value";
    generate = name: value: {
      outPath = "/nix/store/00000000000000000000000000000000-${name}";
      inherit value;
    };
  };
  settings = {
    server = "http://10.20.1.11:7770";
    node = "worker-01";
    state-dir = "/var/lib/sendan-agent-node";
    systemd-run = "always";
    advertise = "10.20.1.21";
  };
  agent = {
    enable = true;
    package = "/nix/store/11111111111111111111111111111111-sendan-0.1.0";
    inherit settings;
    tokenFile = "/var/lib/sendan-secrets/node-token";
  };
  evaluate =
    cfg:
    import ../../modules/node-agent.nix {
      inherit lib pkgs;
      config = {
        services.sendan.node-agent = cfg;
        networking.hostName = "worker-01";
        nix.package = "/nix/store/22222222222222222222222222222222-nix";
        systemd.package = "/nix/store/33333333333333333333333333333333-systemd";
      };
    };
  module = evaluate agent;
  unit = module.config.content.systemd.services.sendan-node-agent;
in
{
  options = {
    expr = {
      top = b.attrNames module.options.services.sendan.node-agent;
      settings = b.attrNames module.options.services.sendan.node-agent.settings.type.submodule.options;
      nodeDefault = module.options.services.sendan.node-agent.settings.type.submodule.options.node.default;
    };
    expected = {
      top = [ "enable" "package" "settings" "tokenFile" ];
      settings = [ "node" "server" "state-dir" "systemd-run" ];
      nodeDefault = "worker-01";
    };
  };
  onlyWhenEnabled = {
    expr = [ module.config.condition (evaluate (agent // { enable = false; })).config.condition ];
    expected = [ true false ];
  };
  commandLine = {
    expr = unit.serviceConfig.ExecStart;
    expected = "/nix/store/11111111111111111111111111111111-sendan-0.1.0/bin/sendan-agent node --config /nix/store/00000000000000000000000000000000-sendan-node-agent.json";
  };
  tokenIsACredential = {
    expr = {
      rendered = (b.head unit.restartTriggers).value;
      inherit (unit.serviceConfig) LoadCredential;
    };
    expected = {
      rendered = settings // { token-file = "/run/credentials/sendan-node-agent.service/token"; };
      LoadCredential = [ "token:/var/lib/sendan-secrets/node-token" ];
    };
  };
  noTokenFileReadsTheStateDirectory = {
    expr =
      let
        u = (evaluate (agent // { tokenFile = null; })).config.content.systemd.services.sendan-node-agent;
      in
      {
        rendered = (b.head u.restartTriggers).value;
        inherit (u.serviceConfig) LoadCredential;
      };
    expected = {
      rendered = settings;
      LoadCredential = [ ];
    };
  };
  instancesSurviveTheAgentsRestart = {
    expr = {
      inherit (unit.serviceConfig) KillMode StateDirectory Restart;
      root = unit.serviceConfig ? User || unit.serviceConfig ? DynamicUser;
      inherit (unit) path;
    };
    expected = {
      KillMode = "process";
      StateDirectory = "sendan-agent-node";
      Restart = "always";
      root = false;
      path = [ "/nix/store/22222222222222222222222222222222-nix" "/nix/store/33333333333333333333333333333333-systemd" ];
    };
  };
  stateDirectoryMustBeBelowVarLib = {
    expr = map (a: a.assertion) (evaluate (agent // { settings = settings // { state-dir = "/srv/agent"; }; })).config.content.assertions;
    expected = [ false ];
  };
}
