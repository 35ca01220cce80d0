import java.sql.*;

/** What a JDBC tool does on connect and while browsing, printed line by line for the PostgreSQL-protocol test. */
public class JdbcProbe {
  public static void main(String[] args) throws Exception {
    try (Connection c = DriverManager.getConnection("jdbc:postgresql://127.0.0.1:" + args[0] + "/flashduck", "analyst", "")) {
      DatabaseMetaData md = c.getMetaData();
      System.out.println("product " + md.getDatabaseProductName() + " " + md.getDatabaseProductVersion());
      try (ResultSet rs = md.getTables(null, "public", "%", new String[] {"TABLE"})) {
        while (rs.next()) System.out.println("table " + rs.getString("TABLE_SCHEM") + "." + rs.getString("TABLE_NAME") + " " + rs.getString("TABLE_TYPE"));
      }
      try (ResultSet rs = md.getColumns(null, "public", "orders", "%")) {
        while (rs.next()) System.out.println("column " + rs.getInt("ORDINAL_POSITION") + " " + rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME") + " " + rs.getInt("DATA_TYPE"));
      }
      // What schema browsers (DBeaver, Metabase) ask next: schemas, table types, keys, indexes, foreign keys.
      try (ResultSet rs = md.getSchemas()) {
        while (rs.next()) System.out.println("schema " + rs.getString("TABLE_SCHEM"));
      }
      try (ResultSet rs = md.getTableTypes()) {
        StringBuilder types = new StringBuilder("types");
        while (rs.next()) types.append(' ').append(rs.getString(1).replace(' ', '_'));
        System.out.println(types);
      }
      int keys = 0;
      try (ResultSet rs = md.getPrimaryKeys(null, "public", "orders")) { while (rs.next()) keys++; }
      try (ResultSet rs = md.getIndexInfo(null, "public", "orders", false, true)) { while (rs.next()) keys++; }
      try (ResultSet rs = md.getImportedKeys(null, "public", "orders")) { while (rs.next()) keys++; }
      try (ResultSet rs = md.getExportedKeys(null, "public", "orders")) { while (rs.next()) keys++; }
      System.out.println("keys " + keys);
      // Past prepareThreshold (5) the driver prepares on the server and asks for binary values.
      try (PreparedStatement ps = c.prepareStatement("SELECT order_id, amount, ordered_at FROM orders WHERE order_id = ?")) {
        for (int i = 1; i <= 7; i++) {
          ps.setLong(1, 1002);
          try (ResultSet rs = ps.executeQuery()) {
            rs.next();
            System.out.println("execution " + i + " " + rs.getLong(1) + " " + rs.getDouble(2) + " " + rs.getTimestamp(3));
          }
        }
      }
      try (Statement s = c.createStatement()) {
        s.executeQuery("DELETE FROM orders");
      } catch (SQLException e) {
        System.out.println("refused " + e.getSQLState());
      }
    }
  }
}
