# WIRING ONLY: nix/installer/netboot.nix is called with hand-written stand-ins for the nixpkgs `lib` and `pkgs` it
# uses and option values given directly. These tests check what the module makes of its options (the netboot
# module it imports, the installer service and its command, what it bakes in); building the image needs nixpkgs
# (`nix build .#installer-netboot`), which these tests do not have.
let
  b = builtins;
  lib = {
    mkOption = option: option;
    mkDefault = v: v;
    mkIf = condition: content: if condition then content else null;
    optionalString = cond: s: if cond then s else "";
    types = {
      package = "package";
      path = "path";
      nullOr = t: "null or ${t}";
      enum = vs: "one of ${b.concatStringsSep ", " vs}";
    };
  };
  pkg = name: "/nix/store/00000000000000000000000000000000-${name}";
  pkgs = b.listToAttrs (
    map (n: {
      name = n;
      value = pkg n;
    }) [ "disko" "nixos-install-tools" "openssh" "lldpd" "util-linux" "coreutils" ]
  );
  evaluate =
    installer:
    import ../../installer/netboot.nix {
      inherit lib pkgs;
      modulesPath = "/nixpkgs/nixos/modules";
      config = {
        sendan.installer = installer;
        nix.package = pkg "nix";
      };
    };
  defaults = {
    package = pkg "sendan";
    caFile = null;
    afterInstall = "poweroff";
  };
  module = evaluate defaults;
  unit = module.config.systemd.services.sendan-installer;
in
{
  netbootImage = {
    expr = module.imports;
    expected = [ "/nixpkgs/nixos/modules/installer/netboot/netboot-minimal.nix" ];
  };
  runsTheInstallerWithWhatTheInstallNeeds = {
    expr = {
      script = b.replaceStrings [ "\n" ] [ "" ] unit.script;
      inherit (unit) wantedBy path;
      lldpd = module.config.services.lldpd.enable;
      sshPasswords = module.config.services.openssh.settings.PasswordAuthentication;
    };
    expected = {
      script = "sendan-agent install ";
      wantedBy = [ "multi-user.target" ];
      path = [
        (pkg "sendan")
        (pkg "disko")
        (pkg "nixos-install-tools")
        (pkg "openssh")
        (pkg "lldpd")
        (pkg "nix")
        (pkg "util-linux")
        (pkg "coreutils")
      ];
      lldpd = true;
      sshPasswords = false;
    };
  };
  theClusterCaIsBakedInAndPassed =
    let
      m = evaluate (defaults // { caFile = "/etc/lab/ca.pem"; });
    in
    {
      expr = {
        script = b.replaceStrings [ "\n" ] [ "" ] m.config.systemd.services.sendan-installer.script;
        etc = m.config.environment.etc."sendan/ca.pem".source;
      };
      expected = {
        script = "sendan-agent install --ca-file /etc/sendan/ca.pem";
        etc = "/etc/lab/ca.pem";
      };
    };
  powersOffOnlyAfterARealInstall = {
    expr = {
      poweroff = b.match ".*sendan.mode=install.*systemctl poweroff.*" unit.postStop != null;
      none = (evaluate (defaults // { afterInstall = "none"; })).config.systemd.services.sendan-installer.postStop;
    };
    expected = {
      poweroff = true;
      none = null;
    };
  };
}
